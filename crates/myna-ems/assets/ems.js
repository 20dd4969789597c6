// The push of the desk and the hospital screen (a file, not an inline script: the CSP runs
// only our own files). An element with data-push names the stream. Without
// data-reload-incident a change refreshes the htmx lists; with it, a change to that incident
// reloads the page, so its access is checked again. A sign-out or password reset on the
// server ends the stream with `signed_out`, and the page goes to the sign-in.
(() => {
  const el = document.querySelector('[data-push]');
  if (!el) return;
  const es = new EventSource(el.dataset.push);
  const incident = el.dataset.reloadIncident;
  es.addEventListener('incident', (e) => {
    if (incident === undefined) {
      htmx.trigger(document.body, 'incident-changed');
    } else if (e.data === incident || e.data === 'lagged') {
      location.reload();
    }
  });
  es.addEventListener('signed_out', () => {
    es.close();
    location.href = '/login';
  });
})();
