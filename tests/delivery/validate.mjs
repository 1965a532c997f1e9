// Offline checks of what wsgate ships to Kubernetes, without a cluster:
//
//   node validate.mjs objects FILE...
//     Every YAML document (helm template output, plain manifests) against the Kubernetes and
//     prometheus-operator schemas (kubernetes-models), plus what those schemas cannot see:
//     duplicate objects, CRD structural-schema rules, Services whose selector or named
//     targetPort finds no pod port, ServiceMonitors that select no Service port.
//   node validate.mjs routes --crd CRD (--good|--bad) FILE...
//     Route documents against the CRD's openAPIV3Schema with ajv, strict about unknown fields
//     as `kubectl apply` is. --good: every document must pass. --bad: every FILE must hold at
//     least one document that fails (one file = one case), for the reason its "# expect: TEXT"
//     line names, when it has one.
//
// Exit 0 when everything holds, 1 with one line per problem otherwise.
import fs from "node:fs";
import path from "node:path";
import yaml from "js-yaml";
import Ajv from "ajv";

const problems = [];
const problem = (where, what) => problems.push(`${where}: ${what}`);

function readDocs(file) {
  const docs = [];
  yaml.loadAll(fs.readFileSync(file, "utf8"), (doc) => {
    if (doc !== null && doc !== undefined) docs.push(doc);
  });
  return docs;
}

function describe(doc) {
  const meta = doc?.metadata ?? {};
  return `${doc?.kind ?? "?"} ${meta.namespace ? meta.namespace + "/" : ""}${meta.name ?? "?"}`;
}

// ---- objects ---------------------------------------------------------------------------

// apiVersion -> module exporting one class per kind.
async function modelModule(apiVersion) {
  if (apiVersion.startsWith("monitoring.coreos.com/")) {
    return import(`@kubernetes-models/prometheus-operator/${apiVersion}`);
  }
  return import(`kubernetes-models/${apiVersion}`);
}

async function validateModel(where, doc) {
  if (typeof doc.apiVersion !== "string" || typeof doc.kind !== "string") {
    problem(where, "no apiVersion/kind");
    return;
  }
  let mod;
  try {
    mod = await modelModule(doc.apiVersion);
  } catch {
    problem(where, `unknown apiVersion ${doc.apiVersion}`);
    return;
  }
  const Model = mod[doc.kind];
  if (typeof Model !== "function") {
    problem(where, `unknown kind ${doc.kind} in ${doc.apiVersion}`);
    return;
  }
  try {
    new Model(doc).validate();
  } catch (err) {
    problem(where, err.message.split("\n")[0]);
  }
}

// Walks a CRD schema: calls visit(node, pathText) on every node.
function walkSchema(node, at, visit) {
  if (!node || typeof node !== "object") return;
  visit(node, at);
  for (const [name, child] of Object.entries(node.properties ?? {})) {
    walkSchema(child, `${at}.${name}`, visit);
  }
  if (node.items) walkSchema(node.items, `${at}[]`, visit);
  if (node.additionalProperties && typeof node.additionalProperties === "object") {
    walkSchema(node.additionalProperties, `${at}{}`, visit);
  }
}

function newAjv() {
  const ajv = new Ajv({ strict: false, allErrors: true });
  ajv.addFormat("int32", { type: "number", validate: (n) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
  ajv.addFormat("int64", { type: "number", validate: (n) => Number.isInteger(n) });
  ajv.addFormat("date-time", /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/);
  return ajv;
}

// Follows a printer column's JSONPath (.spec.backends[*].address) through the schema.
function schemaAt(root, jsonPath) {
  let node = root;
  for (const part of jsonPath.replace(/\[[^\]]*\]/g, "[]").split(".").slice(1)) {
    const name = part.replace(/\[\]$/, "");
    node = node?.properties?.[name];
    if (part.endsWith("[]")) node = node?.items;
    if (!node) return undefined;
  }
  return node;
}

// The API server's structural-schema rules that kubernetes-models does not check.
function checkCrd(where, crd) {
  const ajv = newAjv();
  for (const version of crd.spec?.versions ?? []) {
    const root = version.schema?.openAPIV3Schema;
    const at = `${where} ${version.name}`;
    if (!root) {
      problem(at, "no openAPIV3Schema");
      continue;
    }
    walkSchema(root, "", (node, p) => {
      const where2 = `${at} schema${p || "."}`;
      if (p === ".metadata") {
        if (Object.keys(node).some((k) => !["type", "properties", "description"].includes(k))) {
          problem(where2, "metadata may only carry type (and name/generateName)");
        }
        return;
      }
      if (!node.type && !node["x-kubernetes-int-or-string"] && !node["x-kubernetes-preserve-unknown-fields"]) {
        problem(where2, "no type (a structural schema needs one on every node)");
      }
      if (node.properties && node.additionalProperties !== undefined) {
        problem(where2, "properties and additionalProperties are mutually exclusive");
      }
      if (node.default !== undefined) {
        const { default: _ignored, ...rest } = node;
        const check = ajv.compile(rest);
        if (!check(node.default)) problem(where2, `default ${JSON.stringify(node.default)} fails its own schema`);
      }
      if (node.pattern !== undefined) {
        try {
          new RegExp(node.pattern, "u");
        } catch (err) {
          problem(where2, `pattern does not compile: ${err.message}`);
        }
      }
    });
    for (const col of version.additionalPrinterColumns ?? []) {
      if (col.jsonPath.startsWith(".metadata.")) continue;
      if (!schemaAt(root, col.jsonPath)) problem(`${at} column ${col.name}`, `${col.jsonPath} names no schema field`);
    }
  }
}

const podTemplate = (doc) => {
  if (["Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job"].includes(doc.kind)) return doc.spec?.template;
  if (doc.kind === "Pod") return doc;
  return undefined;
};

const matches = (selector, labels) =>
  Object.entries(selector ?? {}).every(([k, v]) => (labels ?? {})[k] === v);

// Cross-object references inside one rendering.
function checkReferences(where, docs) {
  const seen = new Set();
  for (const doc of docs) {
    const key = `${doc.apiVersion} ${describe(doc)}`;
    if (seen.has(key)) problem(where, `${describe(doc)} rendered twice`);
    seen.add(key);
  }
  const pods = docs.map(podTemplate).filter(Boolean);
  for (const svc of docs.filter((d) => d.kind === "Service" && d.spec?.selector)) {
    const selected = pods.filter((p) => matches(svc.spec.selector, p.metadata?.labels));
    if (selected.length === 0) {
      problem(where, `${describe(svc)}: selector matches no pod template`);
      continue;
    }
    for (const port of svc.spec.ports ?? []) {
      if (typeof port.targetPort !== "string") continue;
      const found = selected.some((p) =>
        (p.spec?.containers ?? []).some((c) => (c.ports ?? []).some((cp) => cp.name === port.targetPort)),
      );
      if (!found) problem(where, `${describe(svc)}: targetPort ${port.targetPort} is no container port`);
    }
  }
  for (const sm of docs.filter((d) => d.kind === "ServiceMonitor")) {
    for (const ep of sm.spec?.endpoints ?? []) {
      const hit = docs.some(
        (d) =>
          d.kind === "Service" &&
          matches(sm.spec.selector?.matchLabels, d.metadata?.labels) &&
          (d.spec?.ports ?? []).some((p) => p.name === ep.port),
      );
      if (!hit) problem(where, `${describe(sm)}: no Service with a port named ${ep.port} is selected`);
    }
  }
}

async function objects(files) {
  let count = 0;
  const kinds = {};
  const rendered = files.map((file) => ({ file, docs: readDocs(file) }));
  // Custom resources are checked against the CRDs given alongside them.
  const customKinds = new Map();
  for (const crd of rendered.flatMap((r) => r.docs).filter((d) => d.kind === "CustomResourceDefinition")) {
    const version = crd.spec?.versions?.find((v) => v.storage);
    if (!version?.schema?.openAPIV3Schema) continue;
    const check = newAjv().compile(strict(version.schema.openAPIV3Schema));
    customKinds.set(`${crd.spec.group}/${version.name} ${crd.spec.names.kind}`, { crd, check });
  }
  for (const { file, docs } of rendered) {
    if (docs.length === 0) problem(file, "no documents");
    for (const doc of docs) {
      const where = `${path.basename(file)}: ${describe(doc)}`;
      const custom = customKinds.get(`${doc.apiVersion} ${doc.kind}`);
      if (custom) {
        for (const e of routeErrors(doc, custom.crd, custom.check)) problem(where, e);
      } else {
        await validateModel(where, doc);
      }
      if (doc.kind === "CustomResourceDefinition") checkCrd(where, doc);
      kinds[doc.kind] = (kinds[doc.kind] ?? 0) + 1;
      count++;
    }
    checkReferences(path.basename(file), docs);
  }
  const summary = Object.entries(kinds)
    .map(([k, n]) => `${n} ${k}`)
    .join(", ");
  console.log(`validate objects: ${count} documents in ${files.length} files (${summary})`);
}

// ---- routes ----------------------------------------------------------------------------

// What the API server adds to the schema, in ajv's terms: kubectl's strict field validation
// (no unknown field under spec or status) and unique entries in set-typed lists.
function strict(node) {
  if (!node || typeof node !== "object") return node;
  const out = { ...node };
  if (out.properties) {
    out.properties = Object.fromEntries(Object.entries(out.properties).map(([k, v]) => [k, strict(v)]));
    if (out.additionalProperties === undefined) out.additionalProperties = false;
  }
  if (out.items) out.items = strict(out.items);
  // The API server enforces unique entries of a set-typed list itself.
  if (out["x-kubernetes-list-type"] === "set") out.uniqueItems = true;
  return out;
}

const dns1123Subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const dns1123Label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

// Returns the reasons a route document is refused (empty when it is accepted).
function routeErrors(doc, crd, check) {
  const errors = [];
  const version = crd.spec.versions.find((v) => v.served);
  const apiVersion = `${crd.spec.group}/${version.name}`;
  if (doc?.apiVersion !== apiVersion) errors.push(`apiVersion is not ${apiVersion}`);
  if (doc?.kind !== crd.spec.names.kind) errors.push(`kind is not ${crd.spec.names.kind}`);
  const name = doc?.metadata?.name;
  if (typeof name !== "string" || name.length > 253 || !dns1123Subdomain.test(name)) {
    errors.push("metadata.name: missing or not a DNS-1123 subdomain");
  }
  const ns = doc?.metadata?.namespace;
  if (ns !== undefined && (typeof ns !== "string" || ns.length > 63 || !dns1123Label.test(ns))) {
    errors.push("metadata.namespace: not a DNS-1123 label");
  }
  if (!check(doc)) {
    for (const e of check.errors) {
      const extra = e.params?.additionalProperty ? ` (${e.params.additionalProperty})` : "";
      errors.push(`${e.instancePath || "/"}: ${e.message}${extra}`);
    }
  }
  return errors;
}

function routes(args) {
  const crdIndex = args.indexOf("--crd");
  if (crdIndex < 0 || !args[crdIndex + 1]) throw new Error("routes needs --crd FILE");
  const crd = readDocs(args[crdIndex + 1]).find((d) => d.kind === "CustomResourceDefinition");
  const expectGood = args.includes("--good");
  if (expectGood === args.includes("--bad")) throw new Error("routes needs exactly one of --good, --bad");
  const files = args.filter((a, i) => !a.startsWith("--") && i !== crdIndex + 1);
  if (files.length === 0) throw new Error("routes needs at least one FILE");

  const schema = strict(crd.spec.versions.find((v) => v.storage).schema.openAPIV3Schema);
  const check = newAjv().compile(schema);
  let docsSeen = 0;
  for (const file of files) {
    let docs;
    try {
      docs = readDocs(file);
    } catch (err) {
      if (expectGood) problem(file, `not YAML: ${err.message.split("\n")[0]}`);
      else console.log(`  refused ${path.basename(file)}: not YAML`);
      continue;
    }
    if (docs.length === 0) problem(file, "no documents");
    const refused = [];
    for (const doc of docs) {
      docsSeen++;
      const errors = routeErrors(doc, crd, check);
      if (errors.length > 0) refused.push(`${describe(doc)}: ${errors.join("; ")}`);
    }
    if (expectGood) {
      for (const r of refused) problem(file, `refused ${r}`);
    } else if (refused.length === 0) {
      problem(file, "expected a refusal, every document was accepted");
    } else {
      // A bad fixture may say why it must fail ("# expect: TEXT"), so it cannot pass by
      // failing for another reason.
      const expect = /^# expect: (.+)$/m.exec(fs.readFileSync(file, "utf8"))?.[1];
      if (expect && !refused.some((r) => r.includes(expect))) {
        problem(file, `refused, but not for "${expect}": ${refused.join(" | ")}`);
      } else {
        console.log(`  refused ${path.basename(file)}: ${refused[0]}`);
      }
    }
  }
  console.log(`validate routes: ${files.length} files, ${docsSeen} documents, expected ${expectGood ? "accepted" : "refused"}`);
}

const [mode, ...rest] = process.argv.slice(2);
try {
  if (mode === "objects" && rest.length > 0) await objects(rest);
  else if (mode === "routes") routes(rest);
  else throw new Error("usage: validate.mjs objects FILE... | routes --crd CRD (--good|--bad) FILE...");
} catch (err) {
  problem("validate.mjs", err.message);
}
for (const p of problems) console.error(`FAIL ${p}`);
process.exit(problems.length === 0 ? 0 : 1);
