// steercode for VS Code: starts `steercode serve` and shows its inline suggestions.
//
// vscode-languageclient (>= 10) registers the inline completion provider itself; this file finds
// the server, passes the settings, restarts the server when it dies, and keeps a status bar item
// (loading / ready / last latency / error).
import * as fs from "fs";
import * as path from "path";
import * as vscode from "vscode";
import {
  CloseAction,
  ErrorAction,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  State,
} from "vscode-languageclient/node";

let client: LanguageClient | undefined;
let status: vscode.StatusBarItem;
let output: vscode.LogOutputChannel;
let restarts = 0;
let readyPoll: NodeJS.Timeout | undefined;

const LANGUAGES = ["python", "typescript", "javascript", "typescriptreact", "javascriptreact"];
const MAX_RESTARTS = 5;

function cfg(): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration("steercode");
}

interface ServerCommand {
  command: string;
  args: string[];
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    const candidate = path.join(dir, name);
    if (dir && fs.existsSync(candidate)) {
      return candidate;
    }
  }
  return undefined;
}

/** The server to start, or a message saying why none was found. */
export function findServer(): ServerCommand | string {
  const explicit = cfg().get<string>("serverCommand", "").trim();
  if (explicit) {
    return fs.existsSync(explicit) || onPath(explicit)
      ? { command: explicit, args: ["serve"] }
      : `steercode.serverCommand points to "${explicit}", which does not exist`;
  }
  const python = cfg().get<string>("pythonPath", "").trim();
  if (python) {
    return { command: python, args: ["-m", "lsp_server", "serve"] };
  }
  for (const folder of vscode.workspace.workspaceFolders ?? []) {
    for (const venv of [".venv", "venv"]) {
      const candidate = path.join(folder.uri.fsPath, venv, "bin", "steercode");
      if (fs.existsSync(candidate)) {
        return { command: candidate, args: ["serve"] };
      }
    }
  }
  const found = onPath("steercode");
  if (found) {
    return { command: found, args: ["serve"] };
  }
  return "steercode was not found: install it (`pip install steercode` or `make setup`), or set steercode.serverCommand";
}

/** The server's settings, from the extension's. */
export function serverSettings(): Record<string, unknown> {
  const c = cfg();
  const automatic = c.get<string>("automaticTrigger", "on");
  return {
    enable: c.get<boolean>("enable", true),
    modelPath: c.get<string>("modelPath", ""),
    modelUrl: c.get<string>("modelUrl", ""),
    apiKey: c.get<string>("apiKey", ""),
    threads: c.get<number>("threads", 0),
    monitors: c.get<boolean>("monitors", true),
    maxLines: c.get<number>("maxLines", 8),
    automatic,
    lineMode: c.get<string>("invokedTrigger", "auto"),
  };
}

function setStatus(text: string, tooltip: string, error = false): void {
  status.text = text;
  status.tooltip = tooltip;
  status.backgroundColor = error ? new vscode.ThemeColor("statusBarItem.errorBackground") : undefined;
  status.show();
}

function pollReady(c: LanguageClient): void {
  if (readyPoll) {
    clearInterval(readyPoll);
  }
  readyPoll = setInterval(async () => {
    if (c.state !== State.Running) {
      return;
    }
    try {
      const s = (await c.sendRequest("steercode/status", {})) as {
        ready: boolean;
        error?: string;
        progress?: { message: string; percentage: number } | null;
      };
      if (s.progress && !s.ready && !s.error) {
        // the server's $/progress while the model loads, mirrored in the status bar
        setStatus(`$(loading~spin) steercode ${s.progress.percentage}%`, `steercode: ${s.progress.message}`);
      }
      if (s.ready) {
        setStatus("$(check) steercode", "steercode: model ready");
        clearInterval(readyPoll);
        readyPoll = undefined;
      } else if (s.error) {
        setStatus("$(error) steercode", `steercode: ${s.error}`, true);
        clearInterval(readyPoll);
        readyPoll = undefined;
      }
    } catch {
      // the server is still starting
    }
  }, 500);
}

async function start(): Promise<void> {
  const server = findServer();
  if (typeof server === "string") {
    setStatus("$(error) steercode", server, true);
    output.appendLine(server);
    const choice = await vscode.window.showErrorMessage(server, "Open settings");
    if (choice) {
      await vscode.commands.executeCommand("workbench.action.openSettings", "steercode");
    }
    return;
  }
  output.appendLine(`starting ${server.command} ${server.args.join(" ")}`);
  const serverOptions: ServerOptions = { command: server.command, args: server.args, options: { env: process.env } };
  const clientOptions: LanguageClientOptions = {
    documentSelector: LANGUAGES.flatMap((language) => [
      { scheme: "file", language },
      { scheme: "untitled", language },
    ]),
    initializationOptions: { steercode: serverSettings() },
    outputChannel: output,
    errorHandler: {
      error: () => ({ action: ErrorAction.Continue }),
      closed: () => {
        restarts += 1;
        if (restarts <= MAX_RESTARTS) {
          setStatus("$(sync~spin) steercode", "steercode: restarting the server");
          return { action: CloseAction.Restart, message: "steercode stopped; restarting it", handled: true };
        }
        setStatus("$(error) steercode", "steercode stopped repeatedly; see the log", true);
        return {
          action: CloseAction.DoNotRestart,
          message: "steercode stopped repeatedly. Run 'steercode: Show log' for details, then 'steercode: Restart server'.",
        };
      },
    },
    middleware: {
      provideInlineCompletionItems: async (document, position, context, token, next) => {
        if (!cfg().get<boolean>("enable", true)) {
          return null;
        }
        const t0 = Date.now();
        const result = await next(document, position, context, token);
        const items = Array.isArray(result) ? result : result?.items ?? [];
        if (items.length > 0 && !token.isCancellationRequested) {
          setStatus(`$(sparkle) steercode ${Date.now() - t0} ms`, "steercode: latency of the last suggestion");
        }
        return result;
      },
    },
  };
  client = new LanguageClient("steercode", "steercode", serverOptions, clientOptions);
  client.onDidChangeState((e) => {
    if (e.newState === State.Starting) {
      setStatus("$(loading~spin) steercode", "steercode: starting");
    } else if (e.newState === State.Running && client) {
      pollReady(client); // also after an automatic restart: report loading, then ready
    }
  });
  setStatus("$(loading~spin) steercode", "steercode: loading the model");
  try {
    await client.start();
    pollReady(client);
  } catch (err) {
    const message = `steercode could not start: ${err instanceof Error ? err.message : String(err)}`;
    output.appendLine(message);
    setStatus("$(error) steercode", message, true);
    void vscode.window.showErrorMessage(message, "Show log").then((c) => c && output.show());
  }
}

async function stop(): Promise<void> {
  if (readyPoll) {
    clearInterval(readyPoll);
    readyPoll = undefined;
  }
  const c = client;
  client = undefined;
  if (c) {
    try {
      await c.stop();
    } catch {
      // already gone
    }
  }
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  output = vscode.window.createOutputChannel("steercode", { log: true });
  status = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
  status.command = "steercode.showLog";
  context.subscriptions.push(output, status);
  context.subscriptions.push(
    vscode.commands.registerCommand("steercode.restartServer", async () => {
      restarts = 0;
      await stop();
      await start();
    }),
    vscode.commands.registerCommand("steercode.toggle", async () => {
      const enabled = cfg().get<boolean>("enable", true);
      await cfg().update("enable", !enabled, vscode.ConfigurationTarget.Global);
      void vscode.window.setStatusBarMessage(`steercode suggestions ${enabled ? "off" : "on"}`, 2000);
    }),
    vscode.commands.registerCommand("steercode.showLog", () => output.show()),
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (!e.affectsConfiguration("steercode")) {
        return;
      }
      if (e.affectsConfiguration("steercode.serverCommand") || e.affectsConfiguration("steercode.pythonPath")) {
        await stop();
        await start();
        return;
      }
      await client?.sendNotification("workspace/didChangeConfiguration", { settings: { steercode: serverSettings() } });
    }),
  );
  await start();
}

export async function deactivate(): Promise<void> {
  await stop();
}
