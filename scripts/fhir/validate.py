"""Parses FHIR R4 document Bundles with the typed R4 (4.0.1) models of fhir.resources 6.4.0
(pydantic 1): required elements, data types, date formats, choice elements given once, and
no unknown elements. Exits 1 if any file fails."""
import json
import sys

from pydantic import ValidationError
from fhir.resources import __fhir_version__
from fhir.resources.bundle import Bundle

assert __fhir_version__ == "4.0.1", f"fhir.resources models FHIR {__fhir_version__}, not R4"

bad = 0
for path in sys.argv[1:]:
    try:
        with open(path, encoding="utf-8") as f:
            bundle = Bundle.parse_obj(json.load(f))
        if bundle.type != "document":
            raise ValueError(f"Bundle.type is {bundle.type!r}")
        first = bundle.entry[0].resource.resource_type
        if first != "Composition":
            raise ValueError(f"the first entry is a {first}")
    except (ValidationError, ValueError, LookupError) as e:
        bad += 1
        detail = e.errors()[:5] if isinstance(e, ValidationError) else str(e)
        print(f"INVALID {path}: {detail}")
print(f"fhir.resources {__fhir_version__}: {len(sys.argv) - 1 - bad} valid, {bad} invalid")
sys.exit(1 if bad else 0)
