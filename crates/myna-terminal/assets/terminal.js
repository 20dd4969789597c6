// The terminal pushes "redraw" when anything changes (card placed, incident assigned, link
// state, summary arrived). EventSource reconnects by itself. Served as a file: the page's CSP
// allows no inline script.
new EventSource('/events').addEventListener('redraw', () => htmx.trigger(document.body, 'redraw'));
