#!/usr/bin/env node
// Compile contracts/**/*.sol with solc-js (the pinned `solc` npm package, no native binary)
// and write one artifact per deployable contract to contracts/artifacts/<Name>.json.
//
//   node scripts/compile.mjs            write artifacts (and remove stale ones)
//   node scripts/compile.mjs --check    compile in memory, compare with the files on disk
//   node scripts/compile.mjs --out DIR  write (or check) artifacts in DIR instead
//
// Source unit names are repo-relative ("contracts/KeeperRegistry.sol") so the output does not
// depend on where the repository is cloned; the artifacts are committed and the Python keeper
// loads them without needing Node.js.
//
// SETTINGS and findImport are exported for scripts/solc-shim.mjs (the `solc` executable that
// Slither runs), so static analysis sees the contracts exactly as they are compiled here.

import fs from "node:fs";
import path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

import solc from "solc";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const CONTRACTS_DIR = "contracts";
const ARTIFACTS_DIR = path.join(CONTRACTS_DIR, "artifacts");
export const NODE_MODULES = path.join(ROOT, "node_modules");

export const SETTINGS = {
  evmVersion: "prague",
  viaIR: true,
  optimizer: { enabled: true, runs: 5000 },
  metadata: { bytecodeHash: "none", appendCBOR: false },
  outputSelection: {
    "*": {
      "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "evm.methodIdentifiers"],
    },
  },
};

function usage() {
  return "usage: node scripts/compile.mjs [--check] [--out DIR]";
}

function parseArgs(argv) {
  const options = { check: false, out: path.join(ROOT, ARTIFACTS_DIR) };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--check") {
      options.check = true;
    } else if (arg === "--out") {
      const dir = argv[++i];
      if (!dir) fail(`--out needs a directory\n${usage()}`);
      options.out = path.resolve(dir);
    } else if (arg === "-h" || arg === "--help") {
      console.log(usage());
      process.exit(0);
    } else {
      fail(`unknown argument: ${arg}\n${usage()}`);
    }
  }
  return options;
}

function fail(message) {
  console.error(`compile: ${message}`);
  process.exit(1);
}

/** Repo-relative POSIX paths of every .sol file under contracts/, artifacts excluded, sorted. */
function findSources() {
  const found = [];
  const walk = (relDir) => {
    const entries = fs.readdirSync(path.join(ROOT, relDir), { withFileTypes: true });
    for (const entry of entries) {
      const rel = path.posix.join(relDir, entry.name);
      if (entry.isDirectory()) {
        if (rel !== ARTIFACTS_DIR.split(path.sep).join("/") && entry.name !== "node_modules") {
          walk(rel);
        }
      } else if (entry.isFile() && entry.name.endsWith(".sol")) {
        found.push(rel);
      }
    }
  };
  if (fs.existsSync(path.join(ROOT, CONTRACTS_DIR))) walk(CONTRACTS_DIR);
  return found.sort();
}

/** Resolve `base/rel` and refuse anything that escapes `base`. */
function resolveInside(base, rel) {
  const full = path.resolve(base, rel);
  return full === base || full.startsWith(base + path.sep) ? full : null;
}

/** solc import callback: `@scope/...` from node_modules, everything else from the repo root. */
export function findImport(importPath) {
  const candidates = importPath.startsWith("@")
    ? [resolveInside(NODE_MODULES, importPath)]
    : [resolveInside(ROOT, importPath), resolveInside(NODE_MODULES, importPath)];
  for (const candidate of candidates) {
    if (candidate && fs.existsSync(candidate) && fs.statSync(candidate).isFile()) {
      return { contents: fs.readFileSync(candidate, "utf8") };
    }
  }
  return { error: `file not found: ${importPath} (looked in the repo root and node_modules)` };
}

function compile(sourceNames) {
  const sources = {};
  for (const name of sourceNames) {
    sources[name] = { content: fs.readFileSync(path.join(ROOT, name), "utf8") };
  }
  const input = { language: "Solidity", sources, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImport }));

  const diagnostics = output.errors ?? [];
  const errors = diagnostics.filter((d) => d.severity === "error");
  for (const d of diagnostics.filter((d) => d.severity !== "error")) {
    console.error((d.formattedMessage ?? d.message).trimEnd());
  }
  if (errors.length > 0) {
    for (const d of errors) console.error((d.formattedMessage ?? d.message).trimEnd());
    fail(`${errors.length} error(s); no artifacts written`);
  }
  return output;
}

function sortKeys(object) {
  return Object.fromEntries(Object.keys(object ?? {}).sort().map((k) => [k, object[k]]));
}

/** Map of "<Name>.json" -> file text for every contract with bytecode defined under contracts/. */
function buildArtifacts(output, sourceNames) {
  const version = solc.version();
  const { outputSelection: _unused, ...compilerSettings } = SETTINGS;
  const artifacts = new Map();
  const origin = new Map();
  for (const sourceName of sourceNames) {
    const contracts = output.contracts?.[sourceName] ?? {};
    for (const contractName of Object.keys(contracts).sort()) {
      const contract = contracts[contractName];
      const bytecode = contract.evm?.bytecode?.object ?? "";
      // Interfaces and abstract contracts have no bytecode: nothing to deploy, no artifact.
      if (bytecode === "") continue;
      const fileName = `${contractName}.json`;
      if (origin.has(fileName)) {
        fail(`contract name ${contractName} defined in both ${origin.get(fileName)} and ${sourceName}`);
      }
      origin.set(fileName, sourceName);
      const artifact = {
        contractName,
        sourceName,
        compiler: { version, settings: compilerSettings },
        abi: contract.abi,
        bytecode: `0x${bytecode}`,
        deployedBytecode: `0x${contract.evm.deployedBytecode.object}`,
        methodIdentifiers: sortKeys(contract.evm.methodIdentifiers),
      };
      artifacts.set(fileName, `${JSON.stringify(artifact, null, 2)}\n`);
    }
  }
  return artifacts;
}

/** *.json files in `dir` that look like artifacts written by this script. */
function existingArtifacts(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((name) => name.endsWith(".json"))
    .filter((name) => {
      try {
        const data = JSON.parse(fs.readFileSync(path.join(dir, name), "utf8"));
        return typeof data.contractName === "string" && typeof data.sourceName === "string";
      } catch {
        return false;
      }
    })
    .sort();
}

function check(artifacts, dir) {
  const problems = [];
  for (const [fileName, text] of artifacts) {
    const file = path.join(dir, fileName);
    if (!fs.existsSync(file)) problems.push(`missing:  ${fileName}`);
    else if (fs.readFileSync(file, "utf8") !== text) problems.push(`mismatch: ${fileName}`);
  }
  for (const fileName of existingArtifacts(dir)) {
    if (!artifacts.has(fileName)) problems.push(`stale:    ${fileName}`);
  }
  const shown = path.relative(ROOT, dir) || ".";
  if (problems.length > 0) {
    console.error(`compile: artifacts in ${shown} are out of date (run: npm run compile)`);
    for (const problem of problems) console.error(`  ${problem}`);
    process.exit(1);
  }
  console.error(`compile: ${artifacts.size} artifact(s) in ${shown} match the sources`);
}

function write(artifacts, dir) {
  fs.mkdirSync(dir, { recursive: true });
  for (const fileName of existingArtifacts(dir)) {
    if (!artifacts.has(fileName)) {
      fs.rmSync(path.join(dir, fileName));
      console.error(`compile: removed stale ${fileName}`);
    }
  }
  for (const [fileName, text] of artifacts) {
    fs.writeFileSync(path.join(dir, fileName), text);
  }
  const shown = path.relative(ROOT, dir) || ".";
  console.error(`compile: wrote ${artifacts.size} artifact(s) to ${shown} (solc ${solc.version()})`);
}

function main() {
  const options = parseArgs(process.argv.slice(2));
  const sourceNames = findSources();
  if (sourceNames.length === 0) fail(`no Solidity sources under ${CONTRACTS_DIR}/`);
  const output = compile(sourceNames);
  const artifacts = buildArtifacts(output, sourceNames);
  if (options.check) check(artifacts, options.out);
  else write(artifacts, options.out);
}

/** True when run as `node scripts/compile.mjs`, false when imported (by scripts/solc-shim.mjs). */
function isMainModule() {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return fs.realpathSync(script) === fs.realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMainModule()) {
  main();
}
