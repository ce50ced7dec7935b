// tests/container/validate-k8s.cjs: validates Kubernetes objects (a multi-document YAML stream
// on stdin, as `kubectl kustomize` prints it) against the Kubernetes OpenAPI schemas shipped in
// the npm package kubernetes-models (JSON-schema validators generated from Kubernetes' OpenAPI
// document; no cluster, no network).
//   node validate-k8s.cjs LABEL < objects.yaml
// Prints one line per object and `validate-k8s: LABEL ok N objects` or exits 1 with the errors.
// The OpenAPI schemas do not forbid unknown fields (the API server prunes or rejects them), so
// every field is also checked to be known to the schema: a misspelled field fails here too.
"use strict";
const fs = require("fs");
const yaml = require("js-yaml");

const label = process.argv[2] || "stdin";
const documents = yaml.loadAll(fs.readFileSync(0, "utf8")).filter((d) => d != null);
let failures = 0;

function modelFor(apiVersion, kind) {
  let module;
  try {
    module = require(`kubernetes-models/${apiVersion}`);
  } catch (error) {
    return null;
  }
  return module[kind] || null;
}

// Unknown fields: the OpenAPI schemas leave additional properties open, so a misspelled field
// would pass them. As a second, coarser check, every key must be a property that some schema of
// the package names (read from the generated validators), except inside free-form maps.
const knownProperties = new Set();
function loadKnownProperties() {
  const path = require("path");
  for (const pkg of ["kubernetes-models", "@kubernetes-models/apimachinery"]) {
    const dir = path.join(path.dirname(require.resolve(`${pkg}/package.json`)), "_schemas");
    for (const file of fs.readdirSync(dir)) {
      if (!file.endsWith(".js")) continue;
      const source = fs.readFileSync(path.join(dir, file), "utf8");
      for (const match of source.matchAll(/instancePath\+"\/([A-Za-z0-9_$.-]+)"/g)) knownProperties.add(match[1]);
    }
  }
  if (knownProperties.size < 500) throw new Error(`only ${knownProperties.size} schema properties found`);
}

function unknownFields(value, path, problems, kind) {
  if (Array.isArray(value)) {
    value.forEach((item, index) => unknownFields(item, `${path}/${index}`, problems, kind));
    return;
  }
  if (value === null || typeof value !== "object") return;
  // Free-form maps: their keys are data, not fields.
  if (/\/(labels|annotations|data|matchLabels|limits|requests|nodeSelector|stringData|binaryData)$/.test(path)) return;
  if (kind === "Service" && path === "/spec/selector") return;
  for (const [key, child] of Object.entries(value)) {
    if (!knownProperties.has(key)) problems.push(`${path}/${key}: not a field of any Kubernetes schema`);
    unknownFields(child, `${path}/${key}`, problems, kind);
  }
}

loadKnownProperties();
for (const document of documents) {
  const name = `${document.kind}/${document.metadata && document.metadata.name}`;
  const Model = modelFor(document.apiVersion, document.kind);
  if (Model == null) {
    console.log(`validate-k8s: ${label} ${name}: no schema for ${document.apiVersion} ${document.kind}`);
    failures++;
    continue;
  }
  const problems = [];
  try {
    new Model(document).validate();
  } catch (error) {
    problems.push(String(error.message || error));
  }
  unknownFields(document, "", problems, document.kind);
  if (problems.length > 0) {
    failures++;
    console.log(`validate-k8s: ${label} ${name}: INVALID`);
    for (const problem of problems) console.log(`  ${problem}`);
  } else {
    console.log(`validate-k8s: ${label} ${name} (${document.apiVersion}): valid`);
  }
}
if (documents.length === 0) {
  console.log(`validate-k8s: ${label}: no objects`);
  process.exit(1);
}
if (failures > 0) {
  console.log(`validate-k8s: ${label} FAIL ${failures} of ${documents.length} objects`);
  process.exit(1);
}
console.log(`validate-k8s: ${label} ok ${documents.length} objects`);
