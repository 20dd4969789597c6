// Checks a FHIR R4 document Bundle with real tooling: FHIR.js (npm `fhir`) validates every
// resource against the R4 StructureDefinitions (cardinality, types, required bindings,
// unknown elements), and fhirpath evaluates the Bundle's document invariants.
import { createRequire } from 'node:module';
import fs from 'node:fs';

const require = createRequire(import.meta.url);
const { Fhir } = require('fhir');
const fhirpath = require('fhirpath');
const r4 = require('fhirpath/fhir-context/r4');

const fhir = new Fhir();

// The R4 Bundle invariants for a document, and our reference rule, as FHIRPath.
const INVARIANTS = {
  'bdl-7 (fullUrl unique)': 'entry.fullUrl.isDistinct()',
  'bdl-9 (identifier)': "type = 'document' implies (identifier.system.exists() and identifier.value.exists())",
  'bdl-10 (timestamp)': "type = 'document' implies timestamp.hasValue()",
  'bdl-11 (Composition first)': "type = 'document' implies entry.first().resource.is(Composition)",
  'references resolve': "entry.resource.descendants().ofType(Reference).reference.all($this in %context.entry.fullUrl)",
};

/** Every error in `bundle`, as text; empty when it is valid. */
export function fhirErrors(bundle) {
  const out = [];
  const result = fhir.validate(bundle, { errorOnUnexpected: true });
  for (const m of result.messages) {
    if (m.severity === 'error' || m.severity === 'fatal') out.push(`${m.location}: ${m.message}`);
  }
  if (!result.valid && out.length === 0) out.push('FHIR.js: invalid');
  for (const [name, expr] of Object.entries(INVARIANTS)) {
    const [ok] = fhirpath.evaluate(bundle, expr, null, r4);
    if (ok !== true) out.push(`invariant ${name} fails`);
  }
  return out;
}

// As a command: node lib/fhir.mjs file.json… exits 1 if any file has an error.
if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop())) {
  let bad = 0;
  for (const f of process.argv.slice(2)) {
    const errors = fhirErrors(JSON.parse(fs.readFileSync(f, 'utf8')));
    if (errors.length) {
      bad++;
      console.log(`INVALID ${f}\n  ${errors.slice(0, 10).join('\n  ')}`);
    }
  }
  console.log(`fhir.js + fhirpath: ${process.argv.length - 2 - bad} valid, ${bad} invalid`);
  process.exitCode = bad ? 1 : 0;
}
