#!/usr/bin/env node
// A stand-in for the native `solc` executable, backed by solc-js (the pinned `solc` npm package),
// for tools that run `solc` themselves: Slither, through crytic-compile (see scripts/slither.sh).
//
//   solc-shim.mjs --version
//   solc-shim.mjs --standard-json [--allow-paths DIR] [--base-path DIR] [--include-path DIR] < input.json
//
// The standard JSON input is compiled with the settings of scripts/compile.mjs (viaIR, optimizer
// runs, evmVersion, metadata) forced over whatever the caller asked for, so the analysis sees the
// same code as the committed artifacts; only the caller's outputSelection and remappings are kept.
// Sources given by `urls` are read from disk (relative to the working directory, then as imports);
// imports resolve like scripts/compile.mjs: `@scope/...` from node_modules, the rest from the repo.
// Path flags (crytic-compile passes --allow-paths) are accepted and ignored: no file outside the
// repo and its node_modules is read in any case.

import fs from "node:fs";
import path from "node:path";
import process from "node:process";

import solc from "solc";

import { ROOT, SETTINGS, findImport } from "./compile.mjs";

const PATH_FLAGS = new Set(["--allow-paths", "--base-path", "--include-path"]);
const IGNORED_FLAGS = new Set(["--pretty-json"]);

function usage() {
  return "usage: solc-shim.mjs --version | --standard-json [--allow-paths DIR] [--base-path DIR] [--include-path DIR]";
}

function fail(message) {
  console.error(`solc-shim: ${message}`);
  process.exit(2);
}

function parseArgs(argv) {
  let mode = null;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag] = arg.split("=", 1);
    if (arg === "--version" || arg === "--standard-json") {
      mode = arg;
    } else if (PATH_FLAGS.has(flag)) {
      if (!arg.includes("=")) {
        if (i + 1 >= argv.length) fail(`${arg} needs a value\n${usage()}`);
        i++;
      }
    } else if (IGNORED_FLAGS.has(arg)) {
      // no effect on the output that matters here
    } else if (arg === "-h" || arg === "--help") {
      console.log(usage());
      process.exit(0);
    } else {
      fail(`unsupported argument: ${arg}\n${usage()}`);
    }
  }
  if (mode === null) fail(usage());
  return mode;
}

/** A standard JSON output holding one error, the way solc reports a bad input. */
function errorOutput(message) {
  const error = { severity: "error", type: "JSONError", component: "general", message, formattedMessage: message };
  return { errors: [error] };
}

/** Replace `urls` with `content` read from disk; returns an error message or null. */
function loadSources(sources) {
  for (const [name, source] of Object.entries(sources ?? {})) {
    if (typeof source.content === "string") continue;
    const urls = source.urls ?? [];
    let loaded = null;
    for (const url of urls) {
      // Relative to the working directory, as solc reads it, then looked up as an import
      // (which refuses anything outside the repo and node_modules).
      const full = path.resolve(process.cwd(), url);
      const fromRoot = path.relative(ROOT, full).split(path.sep).join("/");
      const found = [fromRoot, url].map(findImport).find((f) => f.contents !== undefined);
      if (found) {
        loaded = found.contents;
        break;
      }
    }
    if (loaded === null) return `source ${name}: none of its urls could be read: ${JSON.stringify(urls)}`;
    sources[name] = { content: loaded };
  }
  return null;
}

function standardJson() {
  let input;
  try {
    input = JSON.parse(fs.readFileSync(0, "utf8"));
  } catch (error) {
    return errorOutput(`standard JSON input is not valid JSON: ${error.message}`);
  }
  input.language ??= "Solidity";
  if (input.language !== "Solidity") return errorOutput(`only Solidity is supported, not ${input.language}`);
  const problem = loadSources(input.sources);
  if (problem) return errorOutput(problem);

  const { outputSelection, ...forced } = SETTINGS;
  const requested = input.settings ?? {};
  input.settings = {
    remappings: requested.remappings ?? [],
    outputSelection: requested.outputSelection ?? outputSelection,
    ...forced,
  };
  return JSON.parse(solc.compile(JSON.stringify(input), { import: findImport }));
}

function main() {
  const mode = parseArgs(process.argv.slice(2));
  if (mode === "--version") {
    process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
    return;
  }
  process.stdout.write(`${JSON.stringify(standardJson())}\n`);
}

main();
