// Verifies captured webhook deliveries with the Standard Webhooks project's own JavaScript
// library (`standardwebhooks` on npm), the way a receiver would; the same contract as
// verify.py:
//
//     node verify.js DELIVERIES.json
//
// Resolves the library from NODE_PATH (scripts/standardwebhooks.sh installs it). Prints
// "N passed, 0 failed"; exits 1 on any failure, 2 when the library is missing.
"use strict";
const fs = require("node:fs");

let Webhook;
try {
  ({ Webhook } = require("standardwebhooks"));
} catch {
  process.stderr.write(
    "the npm package standardwebhooks is missing: run scripts/standardwebhooks.sh (installs " +
      "it under the cargo target directory and says which NODE_PATH to use), or " +
      "`npm install standardwebhooks@1.1.1` and set NODE_PATH to its node_modules\n",
  );
  process.exit(2);
}

const deliveries = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
let passed = 0;
let failed = 0;
for (const { secrets, headers, body } of deliveries) {
  for (const secret of secrets) {
    const hook = new Webhook(secret);
    try {
      const parsed = hook.verify(body, headers);
      if (typeof parsed !== "object" || parsed === null) throw new Error("not a JSON object");
    } catch (e) {
      failed += 1;
      console.error(`REJECTED ${headers["webhook-id"]}: ${e.message}`);
      continue;
    }
    const altered = body.slice(0, -1) + (body.endsWith(" ") ? "\n" : " ");
    try {
      hook.verify(altered, headers);
      failed += 1;
      console.error(`ALTERED BODY ACCEPTED ${headers["webhook-id"]}`);
    } catch {
      passed += 1;
    }
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
