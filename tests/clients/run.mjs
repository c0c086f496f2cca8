// run.mjs — how CTest starts one file of the client tests:
//
//   node run.mjs BIN_DIR TESTDATA_DIR TEST_FILE
//
// Fails (exit 1) with a sentence when the client libraries are not
// installed or are not the versions package.json pins, skips (exit 77)
// when the shared test models are absent, and otherwise runs TEST_FILE
// with node's test runner, the binaries and models named in MLX_BIN_DIR
// and MLX_TESTDATA.

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const [binDir, testdata, file] = process.argv.slice(2);
if (file === undefined) {
  console.error('usage: node run.mjs BIN_DIR TESTDATA_DIR TEST_FILE');
  process.exit(2);
}

const pinned = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8')).dependencies;
for (const [name, version] of Object.entries(pinned)) {
  const manifest = join(here, 'node_modules', name, 'package.json');
  const installed = existsSync(manifest)
    ? JSON.parse(readFileSync(manifest, 'utf8')).version : null;
  if (installed !== version) {
    console.error(`The client library ${name}@${version} is ` +
      `${installed === null ? 'not installed' : `installed as ${installed}`}; ` +
      `run 'npm ci' in ${here} (tests/run.sh does) and run the tests again.`);
    process.exit(1);
  }
}

const model = join(testdata, 'stories260K.gguf');
if (!existsSync(model)) {
  console.log(`SKIP: ${model} is absent; the client tests need the shared test models.`);
  process.exit(77);
}

const r = spawnSync(process.execPath, ['--test', resolve(here, file)], {
  stdio: 'inherit',
  env: { ...process.env, MLX_BIN_DIR: resolve(binDir), MLX_TESTDATA: resolve(testdata) },
});
if (r.error !== undefined) {
  console.error(`cannot run node's test runner: ${r.error.message}`);
  process.exit(1);
}
process.exit(r.status ?? 1);
