// Validates rendered Kubernetes manifests (multi-document YAML, a file or stdin) against the
// Kubernetes OpenAPI schemas that kubernetes-models ships, and ServiceMonitors against the
// prometheus-operator CRD's. Prints one JSON line: { ok, kinds, errors }; exits 1 on any error.
//
//   node_modules/.bin/helm template sc deploy/helm/streamcast | node deploy/helm/validate-manifests.mjs
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';

const text = readFileSync(process.argv[2] ?? 0, 'utf8');
const kinds = [];
const errors = [];
for (const doc of parseAllDocuments(text)) {
  if (doc.errors.length > 0) {
    errors.push(`YAML: ${doc.errors[0].message}`);
    continue;
  }
  const manifest = doc.toJS();
  if (manifest === null || manifest === undefined) continue;
  const { apiVersion, kind } = manifest;
  const name = `${kind}/${manifest.metadata?.name}`;
  const module =
    apiVersion === 'monitoring.coreos.com/v1'
      ? '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1'
      : `kubernetes-models/${apiVersion}`;
  let Model;
  try {
    Model = (await import(module))[kind];
  } catch {
    Model = undefined;
  }
  if (typeof Model !== 'function') {
    errors.push(`${name}: no schema for ${apiVersion} ${kind}`);
    continue;
  }
  try {
    new Model(manifest).validate();
    kinds.push(name);
  } catch (err) {
    errors.push(`${name}: ${err.message}`);
  }
}
console.log(JSON.stringify({ ok: errors.length === 0, kinds, errors }));
process.exit(errors.length === 0 ? 0 : 1);
