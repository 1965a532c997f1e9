// Exits 0 when two YAML (or JSON) files hold the same data, else prints both and exits 1.
//   node yaml-equal.mjs A B
import fs from "node:fs";
import { isDeepStrictEqual } from "node:util";
import yaml from "js-yaml";

const [a, b] = process.argv.slice(2).map((f) => yaml.load(fs.readFileSync(f, "utf8")));
if (!isDeepStrictEqual(a, b)) {
  console.log(JSON.stringify(a));
  console.log(JSON.stringify(b));
  process.exit(1);
}
