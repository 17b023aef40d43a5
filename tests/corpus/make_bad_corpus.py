#!/usr/bin/env python3
"""Writes tests/corpus/bad/: malformed and hostile CDS Hooks requests, one file each, and
index.tsv (file, method, path, content type, expected status, what it is). Re-run after editing;
the files are committed, this script only documents how they were made."""
import copy, json, os

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "bad")
SELECT = "/cds-services/vcf-order-select"
SIGN = "/cds-services/vcf-order-sign"
JSON = "application/json"

BASE = {
    "hook": "order-select",
    "hookInstance": "6c0a8d6e-1f1b-4c39-9d2e-6f9b8f9d0a11",
    "context": {
        "userId": "Practitioner/dr-1",
        "patientId": "p1",
        "encounterId": "enc-1",
        "selections": ["ServiceRequest/sr-1"],
        "draftOrders": {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": {
                "resourceType": "ServiceRequest", "id": "sr-1", "status": "draft",
                "intent": "order",
                "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "72148"}]},
                "subject": {"reference": "Patient/p1"}}}],
        },
    },
    "prefetch": {
        "patient": {"resourceType": "Patient", "id": "p1", "birthDate": "1948-03-02"},
        "conditions": {"resourceType": "Bundle", "type": "searchset", "entry": [
            {"resource": {"resourceType": "Condition", "id": "c1",
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
                "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M80.08XA"}]},
                "subject": {"reference": "Patient/p1"}, "onsetDateTime": "2026-11-20"}}]},
        "procedures": {"resourceType": "Bundle", "type": "searchset", "entry": []},
        "observations": {"resourceType": "Bundle", "type": "searchset", "entry": []},
        "reports": {"resourceType": "Bundle", "type": "searchset", "entry": []},
    },
}
BASE_TEXT = json.dumps(BASE)

cases = []  # (name, bytes, method, path, content_type, status, description)


def add(name, body, status, desc, path=SELECT, method="POST", ctype=JSON):
    if isinstance(body, str):
        body = body.encode("utf-8")
    cases.append((name, body, method, path, ctype, status, desc))


def mutate(name, fn, status, desc, **kw):
    v = copy.deepcopy(BASE)
    fn(v)
    add(name, json.dumps(v, ensure_ascii=False), status, desc, **kw)


def sr(v):
    return v["context"]["draftOrders"]["entry"][0]["resource"]


def nest(depth, leaf="1"):
    return "[" * depth + leaf + "]" * depth


# --- truncated / not JSON / not an object
add("empty", b"", 400, "empty body")
add("truncated-open-brace", "{", 400, "a lone opening brace")
add("truncated-half", BASE_TEXT[: len(BASE_TEXT) // 2], 400, "valid request cut in half")
add("truncated-last-brace", BASE_TEXT[:-1], 400, "valid request missing its final brace")
add("truncated-in-string", BASE_TEXT[:25], 400, "cut inside the hookInstance string")
add("json-null", "null", 400, "JSON null")
add("json-array", "[]", 400, "a JSON array")
add("json-string", '"order-select"', 400, "a JSON string")
add("json-number", "42", 400, "a JSON number")
add("json-true", "true", 400, "a JSON boolean")
add("trailing-garbage", BASE_TEXT + " xyz", 400, "garbage after the object")
add("two-objects", BASE_TEXT + BASE_TEXT, 400, "two concatenated requests")
add("js-comment", "// c\n" + BASE_TEXT, 400, "JavaScript comment")
add("single-quotes", "{'hook': 'order-select'}", 400, "single-quoted JSON")
add("nan-literal", BASE_TEXT.replace('"p1"', "NaN", 1), 400, "NaN literal")
add("trailing-comma", BASE_TEXT[:-1] + ",}", 400, "trailing comma")
add("utf8-bom", b"\xef\xbb\xbf" + BASE_TEXT.encode(), 400, "UTF-8 byte order mark")
add("invalid-utf8", BASE_TEXT.encode().replace(b"dr-1", b"dr-\xff\xfe"), 400, "invalid UTF-8 bytes")
add("utf16", BASE_TEXT.encode("utf-16"), 400, "UTF-16 encoded body")
add("overlong-utf8", BASE_TEXT.encode().replace(b"dr-1", b"dr\xc0\xaf1"), 400, "overlong UTF-8 sequence")
add("nul-bytes", BASE_TEXT.encode().replace(b", ", b",\x00 ", 1), 400, "raw NUL byte between members")
# --- deep nesting
add("deep-top-level", BASE_TEXT[:-1] + ', "extension": ' + nest(50000) + "}", 400, "50,000 nested arrays in an extension")
add("deep-objects", '{"a":' * 5000 + "1" + "}" * 5000, 400, "5,000 nested objects")
mutate("deep-draft-order", lambda v: None, 400, "placeholder")  # replaced below
cases.pop()
add("deep-draft-order", BASE_TEXT.replace('"intent": "order"', '"intent": "order", "note": ' + nest(3000), 1), 400, "3,000 nested arrays inside a draft ServiceRequest")
add("deep-prefetch", BASE_TEXT.replace('"birthDate": "1948-03-02"', '"birthDate": "1948-03-02", "extension": ' + nest(3000), 1), 400, "3,000 nested arrays inside prefetch")
# --- huge strings and arrays
add("oversized-body", BASE_TEXT[:-1] + ', "padding": "' + "x" * (600 * 1024) + '"}', 413, "600 KiB body, over the test server's max_body_bytes (512 KiB)")
mutate("huge-hook", lambda v: v.__setitem__("hook", "o" * 200_000), 400, "200 KB hook string")
mutate("huge-selections", lambda v: v["context"].__setitem__("selections", ["ServiceRequest/x%d" % i for i in range(10_000)]), 400, "10,000 selections that match no draft order")
mutate("huge-patient-id", lambda v: v["context"].__setitem__("patientId", "p" * 200_000), 400, "200 KB patientId")
mutate("huge-user-id", lambda v: v["context"].__setitem__("userId", "Practitioner/" + "d" * 200_000), 400, "200 KB userId")
mutate("huge-number", lambda v: v["context"].__setitem__("patientId", None), 400, "placeholder")
cases.pop()
add("huge-number", BASE_TEXT.replace('"p1"', "1" + "0" * 50000, 1), 400, "50,000-digit number as patientId")
# --- wrong types
mutate("hook-number", lambda v: v.__setitem__("hook", 5), 400, "hook is a number")
mutate("hook-null", lambda v: v.__setitem__("hook", None), 400, "hook is null")
mutate("hookinstance-number", lambda v: v.__setitem__("hookInstance", 12345), 400, "hookInstance is a number")
mutate("context-array", lambda v: v.__setitem__("context", []), 400, "context is an array")
mutate("context-string", lambda v: v.__setitem__("context", "p1"), 400, "context is a string")
mutate("userid-number", lambda v: v["context"].__setitem__("userId", 7), 400, "userId is a number")
mutate("patientid-object", lambda v: v["context"].__setitem__("patientId", {"id": "p1"}), 400, "patientId is an object")
mutate("selections-string", lambda v: v["context"].__setitem__("selections", "ServiceRequest/sr-1"), 400, "selections is a string")
mutate("selections-numbers", lambda v: v["context"].__setitem__("selections", [1, 2]), 400, "selections holds numbers")
mutate("draftorders-array", lambda v: v["context"].__setitem__("draftOrders", [sr(BASE)]), 400, "draftOrders is an array, not a Bundle")
mutate("draftorders-entry-object", lambda v: v["context"]["draftOrders"].__setitem__("entry", {"resource": sr(BASE)}), 400, "draftOrders.entry is an object")
mutate("prefetch-array", lambda v: v.__setitem__("prefetch", []), 400, "prefetch is an array")
mutate("prefetch-patient-string", lambda v: v["prefetch"].__setitem__("patient", "Patient/p1"), 400, "prefetch.patient is a string")
mutate("fhirserver-number", lambda v: v.__setitem__("fhirServer", 443), 400, "fhirServer is a number")
mutate("fhirauthorization-string", lambda v: v.__setitem__("fhirAuthorization", "Bearer abc"), 400, "fhirAuthorization is a string")
mutate("sr-status-number", lambda v: sr(v).__setitem__("status", 5), 400, "ServiceRequest.status is a number")
mutate("sr-code-array", lambda v: sr(v).__setitem__("code", [{"coding": []}]), 400, "ServiceRequest.code is an array")
# --- missing required
mutate("missing-hook", lambda v: v.pop("hook"), 400, "no hook")
mutate("missing-hookinstance", lambda v: v.pop("hookInstance"), 400, "no hookInstance")
mutate("missing-context", lambda v: v.pop("context"), 400, "no context")
mutate("missing-patientid", lambda v: v["context"].pop("patientId"), 400, "no context.patientId")
mutate("missing-userid", lambda v: v["context"].pop("userId"), 400, "no context.userId")
mutate("missing-draftorders", lambda v: v["context"].pop("draftOrders"), 400, "no context.draftOrders")
mutate("missing-selections", lambda v: v["context"].pop("selections"), 400, "order-select without selections")
# --- wrong hook / endpoint / method / media type
mutate("wrong-hook-sign", lambda v: v.__setitem__("hook", "order-sign"), 400, "order-sign request sent to the order-select service")
mutate("wrong-hook-select", lambda v: None, 400, "order-select request sent to the order-sign service", path=SIGN)
mutate("hook-patient-view", lambda v: v.__setitem__("hook", "patient-view"), 400, "patient-view hook")
mutate("hook-empty", lambda v: v.__setitem__("hook", ""), 400, "empty hook")
mutate("unknown-service", lambda v: None, 404, "unknown service id", path="/cds-services/no-such-service")
mutate("service-traversal", lambda v: None, 404, "encoded path traversal in the service id", path="/cds-services/..%2f..%2fhealthz")
mutate("get-service", lambda v: None, 405, "GET on a service endpoint", method="GET")
mutate("text-plain", lambda v: None, 415, "Content-Type text/plain", ctype="text/plain")
mutate("no-content-type", lambda v: None, 415, "no Content-Type", ctype="")
mutate("form-content-type", lambda v: None, 415, "form-encoded Content-Type", ctype="application/x-www-form-urlencoded")
# --- bad references
mutate("selection-missing-order", lambda v: v["context"].__setitem__("selections", ["ServiceRequest/nope"]), 400, "selection names no draft order")
mutate("selection-wrong-type", lambda v: v["context"].__setitem__("selections", ["Patient/p1"]), 400, "selection is a Patient reference")
mutate("selection-no-type", lambda v: v["context"].__setitem__("selections", ["sr-1"]), 400, "selection without resource type")
mutate("userid-no-type", lambda v: v["context"].__setitem__("userId", "dr-1"), 400, "userId without resource type")
mutate("userid-device", lambda v: v["context"].__setitem__("userId", "Device/1"), 400, "userId of a type the hook does not allow")
mutate("selection-empty", lambda v: v["context"].__setitem__("selections", [""]), 400, "empty selection")
# --- non-R4 resources
mutate("dstu2-medicationorder", lambda v: (v["context"]["draftOrders"]["entry"][0].__setitem__("resource", {"resourceType": "MedicationOrder", "id": "sr-1", "status": "draft"}), v["context"].__setitem__("selections", ["MedicationOrder/sr-1"])), 400, "DSTU2 MedicationOrder draft order")
mutate("stu3-procedurerequest", lambda v: (sr(v).__setitem__("resourceType", "ProcedureRequest"), v["context"].__setitem__("selections", ["ProcedureRequest/sr-1"])), 400, "STU3 ProcedureRequest draft order")
mutate("draftorders-not-bundle", lambda v: v["context"].__setitem__("draftOrders", sr(BASE)), 400, "draftOrders is a ServiceRequest, not a Bundle")
mutate("prefetch-patient-wrong-type", lambda v: v["prefetch"].__setitem__("patient", {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "x"}}), 400, "prefetch.patient is an Observation")
mutate("prefetch-no-resourcetype", lambda v: v["prefetch"].__setitem__("conditions", {"type": "searchset", "entry": []}), 400, "prefetch.conditions without resourceType")
mutate("condition-code-string", lambda v: v["prefetch"]["conditions"]["entry"][0]["resource"].__setitem__("code", "M80.08XA"), 400, "prefetched Condition.code is a string, not a CodeableConcept")
# --- invalid dates
mutate("birthdate-month-13", lambda v: v["prefetch"]["patient"].__setitem__("birthDate", "1948-13-45"), 400, "birthDate 1948-13-45")
mutate("birthdate-words", lambda v: v["prefetch"]["patient"].__setitem__("birthDate", "not-a-date"), 400, "birthDate is words")
mutate("birthdate-number", lambda v: v["prefetch"]["patient"].__setitem__("birthDate", 19480302), 400, "birthDate is a number")
mutate("onset-feb-30", lambda v: v["prefetch"]["conditions"]["entry"][0]["resource"].__setitem__("onsetDateTime", "2026-02-30"), 400, "onsetDateTime 2026-02-30")
mutate("onset-hour-25", lambda v: v["prefetch"]["conditions"]["entry"][0]["resource"].__setitem__("onsetDateTime", "2026-11-20T25:00:00Z"), 400, "onsetDateTime hour 25")
mutate("onset-no-timezone", lambda v: v["prefetch"]["conditions"]["entry"][0]["resource"].__setitem__("onsetDateTime", "2026-11-20T10:00:00"), 400, "onsetDateTime with time but no timezone")
# --- unicode oddities
mutate("hook-zero-width", lambda v: v.__setitem__("hook", "order\u200b-select"), 400, "zero-width space in hook")
mutate("hook-homoglyph", lambda v: v.__setitem__("hook", "\u043erder-select"), 400, "Cyrillic o in hook")
mutate("hook-fullwidth", lambda v: v.__setitem__("hook", "\uff4frder-select"), 400, "fullwidth o in hook")
add("lone-surrogate", BASE_TEXT.replace('"p1"', '"\\ud800"', 1), 400, "lone UTF-16 surrogate escape as patientId")
mutate("key-homoglyph", lambda v: v.__setitem__("h\u043eok", v.pop("hook")), 400, "Cyrillic o in the key 'hook' (so hook is missing)")
mutate("selection-rtl-override", lambda v: v["context"].__setitem__("selections", ["ServiceRequest/\u202e1-rs"]), 400, "right-to-left override in a selection")
# --- duplicate keys
add("dup-hook", BASE_TEXT.replace('"hook": "order-select"', '"hook": "order-select", "hook": "order-sign"', 1), 400, "duplicate hook")
add("dup-patientid", BASE_TEXT.replace('"patientId": "p1"', '"patientId": "p1", "patientId": "p2"', 1), 400, "duplicate context.patientId")
add("dup-prefetch-key", BASE_TEXT.replace('"procedures":', '"conditions": {"resourceType": "Bundle", "type": "searchset", "entry": []}, "procedures":', 1), 400, "duplicate prefetch key")
add("dup-resourcetype", BASE_TEXT.replace('"resourceType": "ServiceRequest"', '"resourceType": "ServiceRequest", "resourceType": "Patient"', 1), 400, "duplicate resourceType in a draft order")
add("dup-selections", BASE_TEXT.replace('"selections": ["ServiceRequest/sr-1"]', '"selections": ["ServiceRequest/sr-1"], "selections": []', 1), 400, "duplicate selections")
add("dup-context", BASE_TEXT[:-1] + ', "context": {}}', 400, "duplicate context")

os.makedirs(OUT, exist_ok=True)
for f in os.listdir(OUT):
    os.remove(os.path.join(OUT, f))
lines = ["# file\tmethod\tpath\tcontent-type\tstatus\tdescription"]
for i, (name, body, method, path, ctype, status, desc) in enumerate(cases, 1):
    fname = "%03d-%s.json" % (i, name)
    with open(os.path.join(OUT, fname), "wb") as fh:
        fh.write(body)
    lines.append("\t".join([fname, method, path, ctype or "-", str(status), desc]))
with open(os.path.join(OUT, "index.tsv"), "w") as fh:
    fh.write("\n".join(lines) + "\n")
print(len(cases), "cases")
