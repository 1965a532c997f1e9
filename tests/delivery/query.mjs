// Prints one value of one rendered object as JSON, for assertions in shell tests:
//   node query.mjs FILE KIND/NAME PATH      e.g. Deployment/rel-wsgate-proxy spec.replicas
// PATH is dot-separated, with [N] for list items and [key.with.dots] for such keys; a missing object or value prints nothing and
// exits 1. PATH "." prints the whole object; KIND alone ("PrometheusRule") prints the count.
import fs from "node:fs";
import yaml from "js-yaml";

const [file, which, path] = process.argv.slice(2);
const docs = yaml.loadAll(fs.readFileSync(file, "utf8")).filter(Boolean);
if (!which.includes("/")) {
  console.log(docs.filter((d) => d.kind === which).length);
  process.exit(0);
}
const [kind, name] = which.split("/");
let value = docs.find((d) => d.kind === kind && d.metadata?.name === name);
for (const [, bracketed, plain] of path === "." ? [] : path.matchAll(/\[([^\]]+)\]|([^.[\]]+)/g)) {
  value = value?.[bracketed !== undefined && /^\d+$/.test(bracketed) ? Number(bracketed) : (bracketed ?? plain)];
}
if (value === undefined) process.exit(1);
console.log(typeof value === "string" ? value : JSON.stringify(value));
