// End-to-end test of the packaged extension in real VS Code (code-server), driven with
// playwright-core and Debian's chromium. Run by tests/test_editors.py; writes its observations
// to $ARTIFACTS/vscode-e2e.json and screenshots next to it. Exit code 0 = all checks passed.
import { chromium } from "playwright-core";
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`missing env ${k}`);
  return v;
};
const NODE24 = env("NODE24");
const CODE_SERVER = env("CODE_SERVER");
const CHROMIUM = env("CHROMIUM");
const VSIX = env("VSIX");
const STEERCODE = env("STEERCODE");
const ARTIFACTS = env("ARTIFACTS");
fs.mkdirSync(ARTIFACTS, { recursive: true });

const results = { checks: {} };
const check = (name, ok, detail) => {
  results.checks[name] = { ok: !!ok, detail };
  console.log(`${ok ? "ok  " : "FAIL"} ${name}${detail !== undefined ? ": " + JSON.stringify(detail) : ""}`);
};
// the file's editor (not the chat input, which is a Monaco editor too)
const EDITOR = ".editor-group-container .monaco-editor";
const LINES = `${EDITOR} .view-lines`;
const GHOST = `${EDITOR} .ghost-text-decoration, ${EDITOR} .ghost-text`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The ghost text once it appears (non-breaking spaces as spaces), or "" after a minute. */
async function waitForGhost(page) {
  try {
    await page.waitForSelector(GHOST, { timeout: 60000 });
    return (await page.locator(GHOST).allInnerTexts()).join("").replace(/\u00a0/g, " ");
  } catch {
    return "";
  }
}

async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "steercode-vscode-"));
const workspace = path.join(tmp, "workspace");
const extDir = path.join(tmp, "extensions");
const userDir = path.join(tmp, "user-data");
const serverLog = path.join(tmp, "server.log");
fs.mkdirSync(workspace, { recursive: true });
fs.mkdirSync(path.join(userDir, "User"), { recursive: true });
fs.writeFileSync(
  path.join(workspace, "demo.py"),
  'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n    if n < 2:\n        return n\n    return \n',
);
// the server, wrapped to log every completion (the stale-suggestion check reads it)
const wrapper = path.join(tmp, "steercode-logged");
fs.writeFileSync(wrapper, `#!/bin/sh\nexec "${STEERCODE}" "$@" --log-file "${serverLog}" --log-level info\n`, { mode: 0o755 });
fs.writeFileSync(
  path.join(userDir, "User", "settings.json"),
  JSON.stringify({
    "steercode.serverCommand": wrapper,
    "steercode.maxLines": 1,
    "editor.inlineSuggest.enabled": true,
    "editor.quickSuggestions": { other: false, comments: false, strings: false },
    "editor.suggestOnTriggerCharacters": false,
    "workbench.startupEditor": "none",
    "workbench.secondarySideBar.defaultVisibility": "hidden",
    "chat.disableAIFeatures": true,
    "workbench.tips.enabled": false,
    "security.workspace.trust.enabled": false,
    "telemetry.telemetryLevel": "off",
    "extensions.autoUpdate": false,
    "files.trimTrailingWhitespace": false,
  }),
);

const nodeEnv = { ...process.env, PATH: `${path.dirname(NODE24)}:${process.env.PATH}` };
execFileSync(CODE_SERVER, ["--extensions-dir", extDir, "--user-data-dir", userDir, "--install-extension", VSIX], {
  env: nodeEnv,
  stdio: "inherit",
});

const port = await freePort();
const cs = spawn(
  CODE_SERVER,
  ["--bind-addr", `127.0.0.1:${port}`, "--auth", "none", "--disable-telemetry", "--disable-update-check",
   "--disable-workspace-trust", "--extensions-dir", extDir, "--user-data-dir", userDir, workspace],
  { env: nodeEnv, stdio: ["ignore", "pipe", "pipe"], detached: true },
);
cs.stdout.on("data", () => {});
cs.stderr.on("data", () => {});

let browser;
let exitCode = 1;
try {
  for (let i = 0; i < 120; i++) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/healthz`);
      if (r.ok) break;
    } catch {}
    await sleep(500);
  }
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}`);
  await page.waitForSelector(".monaco-workbench", { timeout: 120000 });
  check("workbench loaded", true);

  // open demo.py from the Explorer
  const row = page.locator(".explorer-folders-view .monaco-list-row", { hasText: "demo.py" });
  await row.first().waitFor({ timeout: 60000 });
  await row.first().click();
  await page.waitForSelector(LINES, { timeout: 60000 });

  // wait until the extension says the model is ready
  const item = page.locator(".statusbar-item", { hasText: "steercode" });
  let statusText = "";
  for (let i = 0; i < 240; i++) {
    statusText = (await item.first().getAttribute("aria-label").catch(() => "")) ?? "";
    const label = (await item.first().innerText().catch(() => "")) ?? "";
    if (/ready|ms/.test(statusText) || /check/.test(await item.first().innerHTML().catch(() => ""))) break;
    if (/error/.test(label + statusText)) break;
    await sleep(500);
  }
  check("status bar shows the server", statusText.length > 0, statusText);

  // type at the end of "    return " and wait for ghost text
  await page.locator(LINES).first().click();
  await page.keyboard.press("Control+End");
  await page.keyboard.press("ArrowUp");
  await page.keyboard.press("End");
  await page.keyboard.type("fib", { delay: 120 });
  const ghost = await waitForGhost(page);
  await page.screenshot({ path: path.join(ARTIFACTS, "vscode-ghost-text.png") });
  check("ghost text appears", ghost.trim().length > 0, ghost);

  await page.keyboard.press("Tab");
  await sleep(700);
  const lines = await page.locator(`${LINES} .view-line`).allInnerTexts();
  const text = lines.join("\n").replace(/\u00a0/g, " ");
  await page.screenshot({ path: path.join(ARTIFACTS, "vscode-accepted.png") });
  const acceptedLine = lines.find((l) => l.replace(/\u00a0/g, " ").includes("return fib")) ?? "";
  check("Tab accepts the suggestion", ghost.trim().length > 0 && acceptedLine.replace(/\u00a0/g, " ").includes("return fib" + ghost.trim().slice(0, 3)), acceptedLine);
  results.accepted_text = text;
  // and the file itself, once saved
  await page.keyboard.press("Control+S");
  let saved = "";
  for (let i = 0; i < 20 && !saved.includes("return fib" + ghost.trim()); i++) {
    await sleep(250);
    saved = fs.readFileSync(path.join(workspace, "demo.py"), "utf8");
  }
  check("saved file contains the suggestion", ghost.trim().length > 0 && saved.includes("return fib" + ghost.trim()), saved);

  // typing fast: 10 keystrokes 30 ms apart must not leave a suggestion for an older state
  await page.keyboard.press("End");
  await page.keyboard.press("Enter");
  const typed = "print(fibo";
  const logBefore = fs.existsSync(serverLog) ? fs.readFileSync(serverLog, "utf8").length : 0;
  await page.keyboard.type(typed, { delay: 30 });
  await sleep(4000);
  const ghosts = (await page.locator(GHOST).allInnerTexts()).join("");
  const curLine = (await page.locator(`${LINES} .view-line`).allInnerTexts())
    .map((l) => l.replace(/\u00a0/g, " "))
    .find((l) => l.includes(typed)) ?? "";
  await page.screenshot({ path: path.join(ARTIFACTS, "vscode-fast-typing.png") });
  const log = fs.existsSync(serverLog) ? fs.readFileSync(serverLog, "utf8").slice(logBefore) : "";
  const served = [...log.matchAll(/completion demo\.py:(\d+):(\d+) .*? (['"])(.*)\3$/gm)].map((m) => ({
    line: +m[1], character: +m[2], text: m[4],
  }));
  const finalCol = curLine.indexOf(typed) + typed.length;
  const forFinal = served.filter((s) => s.character === finalCol);
  const shown = ghosts.replace(/\u00a0/g, " ").trim(); // the editor renders spaces as U+00A0
  const stale = shown.length > 0 && !forFinal.some((s) => s.text.trim().startsWith(shown.slice(0, 8)) || shown.includes(s.text.trim().slice(0, 8)));
  check("no stale suggestion after fast typing", !stale && curLine.trimStart().startsWith(typed), {
    ghost: ghosts, line: curLine, served_for_final_position: forFinal.length, requests_served: served.length,
  });

  // the server dies: the extension restarts it, the status bar comes back to ready, and
  // suggestions appear again
  const serverPids = () => {
    try {
      return execFileSync("pgrep", ["-f", serverLog]).toString().trim().split(/\s+/).filter(Boolean);
    } catch {
      return [];
    }
  };
  const before = serverPids();
  for (const pid of before) {
    try { process.kill(+pid, "SIGKILL"); } catch {}
  }
  await sleep(1500);
  let readyAgain = false;
  for (let i = 0; i < 240 && !readyAgain; i++) {
    const label = (await item.first().getAttribute("aria-label").catch(() => "")) ?? "";
    readyAgain = /model ready|ms/.test(label) && serverPids().some((p) => !before.includes(p));
    if (!readyAgain) await sleep(500);
  }
  const after = serverPids();
  await page.keyboard.press("End");
  await page.keyboard.press("Enter");
  await page.keyboard.type("x = fib", { delay: 120 });
  const ghostAgain = await waitForGhost(page);
  await page.screenshot({ path: path.join(ARTIFACTS, "vscode-after-restart.png") });
  check("server restarted after it died", before.length > 0 && readyAgain && ghostAgain.trim().length > 0, {
    killed: before, running: after, ghost: ghostAgain,
  });
  exitCode = Object.values(results.checks).every((c) => c.ok) ? 0 : 1;
} catch (err) {
  check("no exception", false, String(err && err.stack ? err.stack : err));
  exitCode = 1;
} finally {
  fs.writeFileSync(path.join(ARTIFACTS, "vscode-e2e.json"), JSON.stringify(results, null, 2));
  if (fs.existsSync(serverLog)) fs.copyFileSync(serverLog, path.join(ARTIFACTS, "vscode-server.log"));
  if (browser) await browser.close().catch(() => {});
  try { process.kill(-cs.pid, "SIGTERM"); } catch {}
  await sleep(500);
  try { process.kill(-cs.pid, "SIGKILL"); } catch {}
  process.exit(exitCode);
}
