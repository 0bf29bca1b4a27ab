// The web UI in a real browser: Playwright (playwright-core) driving Debian's headless
// Chromium against a running troupe node. tests/web_browser.rs starts the node, submits the
// runs this walks through and runs `node tests/browser/ui.mjs CONFIG.json`; the selectors are
// those of the UI's contract for issue 19 (src/web/).
//
// CONFIG.json (every key required unless marked optional):
//   url          "http://127.0.0.1:PORT", the node's http_addr
//   token        a token of the node's [http] tokens_file
//   screenshots  folder for one PNG per page (made if missing)
//   runs         {"RUN_ID": "STATE", ...}: runs the runs page must list, with the state
//                its td.state shows
//   live         {run, tasks: [ID...] (all its tasks), waiter: ID (waits for release_file),
//                 release_file: PATH, gate: ID (requires approval, after waiter)}
//   failed       {run, task, log_text}: a failed task whose log holds log_text
//   xss          {run, name, gate, reason}: a run whose workflow name is markup, and its
//                gate task, which this rejects with `reason`, also markup; markup that runs
//                would set window.__troupeXss or open a dialog
//   big_log      {run, task}: a task whose log is 16 MiB
//   chromium     optional, default $TROUPE_CHROMIUM or /usr/bin/chromium
//
// Screenshots: runs, run, run-live, task-failed, login, approvals, run-succeeded, xss,
// task-big-log (the viewport only), node, nodes, run-tree.
//
// Prints one line per step ("ok   STEP" or "FAIL STEP: why") and "N passed, N failed"; exits
// 0 only if every step passed, 1 if one failed, 2 on a bad CONFIG.json.

import { chromium } from "playwright-core";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Flags for Chromium on a machine with no display and a closed network (no GPU, no
 * background connections to Google, no first-run UI); as root it also needs --no-sandbox. */
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** How long one wait for the page may take, ms (a live update, a page load). */
const WAIT_MS = 30_000;
/** How long the page of a 16 MiB log may take to answer a script once loaded, ms. */
const RESPONSIVE_MS = 5_000;

function loadConfig() {
  const path = process.argv[2];
  if (!path) {
    console.error("usage: node tests/browser/ui.mjs CONFIG.json (see the comment at its top)");
    process.exit(2);
  }
  let config;
  try {
    config = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    console.error(`ui.mjs: cannot read ${path}: ${e.message}`);
    process.exit(2);
  }
  const need = ["url", "token", "screenshots", "runs", "live", "failed", "xss", "big_log"];
  const missing = need.filter((k) => config[k] === undefined);
  if (missing.length) {
    console.error(`ui.mjs: ${path} lacks ${missing.join(", ")}`);
    process.exit(2);
  }
  config.url = config.url.replace(/\/$/, "");
  return config;
}

const config = loadConfig();
let passed = 0;
let failed = 0;
/** Names of the steps that failed, for the steps that need them. */
const failedSteps = new Set();

/** Runs one step; a failure is recorded with its message and the walk goes on. A step that
 * `needs` a step that failed fails at once, saying which (it would only time out). */
async function step(name, body, needs = []) {
  const missed = needs.filter((n) => failedSteps.has(n));
  try {
    check(!missed.length, `not run, as "${missed.join('", "')}" failed`);
    await body();
    passed += 1;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed += 1;
    failedSteps.add(name);
    const why = (e && e.message ? e.message : String(e))
      .replace(/\x1b\[[0-9;]*m/g, "")
      .split("\n")
      .slice(0, 6)
      .join("\n     ");
    console.log(`FAIL ${name}: ${why}`);
  }
}

// The steps' names, for `needs`.
const RUNS = "runs page lists every run with its state";
const RUN = "a run's page draws every task in the SVG";
const LOGIN = "log in at /login with the token";
const APPROVE = "approve the gate at /approvals";

function check(cond, message) {
  if (!cond) throw new Error(message);
}

/** CSS attribute-value string for `value` (ids and run ids are plain, but be exact). */
function q(value) {
  return JSON.stringify(String(value));
}

async function shot(page, name, fullPage = true) {
  await page.screenshot({ path: join(config.screenshots, `${name}.png`), fullPage });
}

/** Waits for `predicate` (a function run in the page, with `arg`) to hold, or throws `what`. */
async function waitInPage(page, what, predicate, arg) {
  try {
    await page.waitForFunction(predicate, arg, { timeout: WAIT_MS, polling: 100 });
  } catch (e) {
    throw new Error(`${what} (not within ${WAIT_MS / 1000} s)`);
  }
}

/** Loads `path`, failing on an HTTP error status. */
async function open(page, path) {
  const response = await page.goto(config.url + path, { timeout: WAIT_MS });
  check(response, `no response for ${path}`);
  check(response.ok(), `GET ${path} answered ${response.status()}`);
  return response;
}

mkdirSync(config.screenshots, { recursive: true });
const userDataDir = mkdtempSync(join(tmpdir(), "troupe-chromium-"));
const executablePath = config.chromium || process.env.TROUPE_CHROMIUM || "/usr/bin/chromium";
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 800 },
  });
} catch (e) {
  console.log(`FAIL launch: cannot start ${executablePath}: ${e.message.split("\n")[0]}`);
  console.log("0 passed, 1 failed");
  rmSync(userDataDir, { recursive: true, force: true });
  process.exit(1);
}

// Every dialog (alert, confirm, prompt) is markup that ran: none may open. Every uncaught
// exception in a page's own script is a bug of the UI.
const dialogs = [];
const pageErrors = [];
function watch(page) {
  page.on("dialog", async (dialog) => {
    dialogs.push(`${dialog.type()} "${dialog.message()}" on ${page.url()}`);
    await dialog.dismiss().catch(() => {});
  });
  page.on("pageerror", (error) => pageErrors.push(`${page.url()}: ${error.message}`));
}
context.on("page", watch);
context.pages().forEach(watch);

const live = config.live;
// The tab that stays on the live run's page from opening it to the run's end.
const runTab = context.pages()[0] || (await context.newPage());
// The tab for everything else.
const tab = await context.newPage();

try {
  await step(RUNS, async () => {
    await open(runTab, "/runs");
    await runTab.waitForSelector("table#runs", { timeout: WAIT_MS });
    for (const [run, state] of Object.entries(config.runs)) {
      const row = runTab.locator(`table#runs tr[data-run=${q(run)}]`);
      check((await row.count()) === 1, `no row tr[data-run=${q(run)}] in table#runs`);
      check(
        (await row.locator(`a[href=${q(`/runs/${run}`)}]`).count()) >= 1,
        `row of ${run} has no link to /runs/${run}`,
      );
      const shown = (await row.locator("td.state").innerText()).trim();
      check(shown === state, `run ${run}: td.state says "${shown}", expected "${state}"`);
    }
    await shot(runTab, "runs");
  });

  await step(RUN, async () => {
    await runTab.locator(`table#runs tr[data-run=${q(live.run)}] a[href=${q(`/runs/${live.run}`)}]`).first().click();
    await runTab.waitForURL(`**/runs/${live.run}`, { timeout: WAIT_MS });
    await runTab.waitForSelector("svg#dag", { timeout: WAIT_MS });
    const drawn = await runTab.locator("svg#dag g.node").count();
    check(drawn === live.tasks.length, `svg#dag has ${drawn} g.node, the run has ${live.tasks.length} tasks`);
    for (const task of live.tasks) {
      check(
        (await runTab.locator(`svg#dag g.node[data-task=${q(task)}]`).count()) === 1,
        `no g.node[data-task=${q(task)}] in svg#dag`,
      );
      check(
        (await runTab.locator(`table#tasks tr[data-task=${q(task)}]`).count()) === 1,
        `no tr[data-task=${q(task)}] in table#tasks`,
      );
    }
    check((await runTab.locator("[data-run-state]").count()) >= 1, "no [data-run-state] element");
    await shot(runTab, "run");
  }, [RUNS]);

  await step("a task turns green live, without a reload", async () => {
    const node = `svg#dag g.node[data-task=${q(live.waiter)}]`;
    const classes = await runTab.locator(node).getAttribute("class");
    check(!/\bstate-succeeded\b/.test(classes || ""), `${live.waiter} is already succeeded (class "${classes}")`);
    // A mark on the window: a reload would take it away.
    await runTab.evaluate(() => {
      window.__troupeNoReload = true;
    });
    writeFileSync(live.release_file, "");
    await waitInPage(
      runTab,
      `g.node[data-task=${q(live.waiter)}] did not get class state-succeeded`,
      (sel) => document.querySelector(sel)?.classList.contains("state-succeeded"),
      node,
    );
    await waitInPage(
      runTab,
      `td.state of tr[data-task=${q(live.waiter)}] did not change to succeeded`,
      (sel) => document.querySelector(sel)?.textContent.trim() === "succeeded",
      `table#tasks tr[data-task=${q(live.waiter)}] td.state`,
    );
    check(await runTab.evaluate(() => window.__troupeNoReload === true), "the page reloaded");
    await shot(runTab, "run-live");
  }, [RUN]);

  await step("a failed task's page shows its log", async () => {
    const { run, task, log_text } = config.failed;
    await open(tab, `/runs/${run}/tasks/${task}`);
    await tab.waitForSelector("table#attempts", { timeout: WAIT_MS });
    const log = await tab.locator("pre#log").innerText({ timeout: WAIT_MS });
    check(log.includes(log_text), `pre#log does not hold "${log_text}"; it holds: ${log.slice(-300)}`);
    await shot(tab, "task-failed");
  });

  await step("a wrong token at /login is refused with the form again", async () => {
    await open(tab, "/login");
    await tab.fill("input[name=token]", `${config.token}-wrong`);
    const [response] = await Promise.all([
      tab.waitForNavigation({ timeout: WAIT_MS }),
      tab.click("button[type=submit]"),
    ]);
    check(response && response.status() === 403, `wrong token answered ${response && response.status()}, not 403`);
    check((await tab.locator("input[name=token]").count()) === 1, "the 403 page has no login form");
    const cookies = await context.cookies(config.url);
    check(!cookies.some((c) => c.name === "troupe_session"), "a wrong token got a troupe_session cookie");
  });

  await step(LOGIN, async () => {
    await open(tab, "/login");
    await tab.fill("input[name=token]", config.token);
    await shot(tab, "login");
    await Promise.all([tab.waitForURL("**/runs", { timeout: WAIT_MS }), tab.click("button[type=submit]")]);
    const session = (await context.cookies(config.url)).find((c) => c.name === "troupe_session");
    check(session, "no troupe_session cookie after logging in");
    check(session.httpOnly, "troupe_session is not HttpOnly");
    check(session.sameSite === "Strict", `troupe_session is SameSite=${session.sameSite}, not Strict`);
    const csrf = await tab.locator('meta[name="csrf-token"]').getAttribute("content");
    check(csrf, "no meta csrf-token once logged in");
  });

  await step(APPROVE, async () => {
    const row = `table#approvals tr[data-run=${q(live.run)}][data-task=${q(live.gate)}]`;
    // The gate asks for approval once the waiter has succeeded (released by the step before,
    // and here again in case that step failed first); reload until it is listed.
    writeFileSync(live.release_file, "");
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      await open(tab, "/approvals");
      if ((await tab.locator(row).count()) === 1) break;
      check(Date.now() < deadline, `${row} not listed within ${WAIT_MS / 1000} s`);
      await tab.waitForTimeout(250);
    }
    check((await tab.locator(`${row} input[name=csrf]`).count()) === 1, "the approval form has no csrf input");
    await tab.fill(`${row} input[name=reason]`, "looked fine in the browser");
    await shot(tab, "approvals");
    await Promise.all([
      tab.waitForNavigation({ timeout: WAIT_MS }),
      tab.click(`${row} button[name=decision][value=approve]`),
    ]);
    await open(tab, "/approvals");
    check((await tab.locator(row).count()) === 0, `${row} is still listed after approving`);
  }, [LOGIN]);

  await step("the run finishes: data-run-state becomes succeeded", async () => {
    const finished = () => {
      const el = document.querySelector("[data-run-state]");
      return el && el.getAttribute("data-run-state") === "succeeded";
    };
    try {
      await runTab.waitForFunction(finished, null, { timeout: WAIT_MS, polling: 100 });
    } catch {
      // Not updated live (the contract streams task states): the page must say so once loaded.
      console.log("note run state did not change live; reloading the run page");
      await open(runTab, `/runs/${live.run}`);
      const state = await runTab.locator("[data-run-state]").first().getAttribute("data-run-state");
      check(state === "succeeded", `data-run-state is "${state}" after a reload, not succeeded`);
    }
    const text = (await runTab.locator("[data-run-state]").first().innerText()).trim();
    check(text.includes("succeeded"), `the [data-run-state] element says "${text}"`);
    const green = await runTab.locator("svg#dag g.node.state-succeeded").count();
    check(green === live.tasks.length, `${green} of ${live.tasks.length} g.node are state-succeeded`);
    await shot(runTab, "run-succeeded");
  }, [APPROVE]);

  await step("a workflow name and a reason holding markup are shown as text", async () => {
    const { run, name, gate, reason } = config.xss;
    await open(tab, `/runs?name=${encodeURIComponent(name)}`);
    const row = tab.locator(`table#runs tr[data-run=${q(run)}]`);
    check((await row.count()) === 1, `the runs page filtered by the name lists no row for ${run}`);
    check((await row.innerText()).includes(name), `the runs row does not show the name literally`);
    await open(tab, `/runs/${run}`);
    check((await tab.locator("body").innerText()).includes(name), "the run page does not show the name literally");
    // Reject its gate with a reason holding markup, through the form.
    const approval = `table#approvals tr[data-run=${q(run)}][data-task=${q(gate)}]`;
    await open(tab, "/approvals");
    check((await tab.locator(approval).count()) === 1, `${approval} is not listed`);
    check((await tab.locator(approval).innerText()).includes(name), "the approvals row does not show the name literally");
    await tab.fill(`${approval} input[name=reason]`, reason);
    await Promise.all([
      tab.waitForNavigation({ timeout: WAIT_MS }),
      tab.click(`${approval} button[name=decision][value=reject]`),
    ]);
    await open(tab, `/runs/${run}/tasks/${gate}`);
    let shown = (await tab.locator("body").innerText()).includes(reason);
    if (!shown) {
      await open(tab, `/runs/${run}`);
      shown = (await tab.locator("body").innerText()).includes(reason);
    }
    check(shown, "neither the task page nor the run page shows the reason literally");
    const injected = await tab.evaluate(() => window.__troupeXss);
    check(injected === undefined, `markup ran: window.__troupeXss = ${injected}`);
    await shot(tab, "xss");
  }, [LOGIN]);

  await step("the page of a 16 MiB log loads and stays responsive", async () => {
    const { run, task } = config.big_log;
    const started = Date.now();
    await open(tab, `/runs/${run}/tasks/${task}`);
    await tab.waitForSelector("pre#log", { timeout: WAIT_MS });
    const loaded = Date.now() - started;
    const asked = Date.now();
    const length = await Promise.race([
      tab.evaluate(() => document.querySelector("pre#log").textContent.length),
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error(`the page did not answer a script within ${RESPONSIVE_MS / 1000} s`)), RESPONSIVE_MS),
      ),
    ]);
    check(length > 0, "pre#log is empty");
    check((await tab.locator("a#full-log").count()) === 1, "no a#full-log link to the whole log");
    console.log(`note 16 MiB log page: loaded in ${loaded} ms, answered in ${Date.now() - asked} ms, pre#log holds ${length} characters`);
    await shot(tab, "task-big-log", false);
  });

  await step("the node, worker nodes and agent tree pages load; an unknown run is a 404 page", async () => {
    for (const [path, name] of [
      ["/node", "node"],
      ["/nodes", "nodes"],
      [`/runs/${live.run}/tree`, "run-tree"],
    ]) {
      await open(tab, path);
      await shot(tab, name);
    }
    const response = await tab.goto(`${config.url}/runs/no-such-run`, { timeout: WAIT_MS });
    check(response.status() === 404, `/runs/no-such-run answered ${response.status()}, not 404`);
    const h1 = await tab.locator("h1").first().innerText();
    check(/not found/i.test(h1), `the 404 page's h1 says "${h1}"`);
  });

  await step("the pages work with JavaScript off", async () => {
    const plain = await context.newPage();
    try {
      const cdp = await context.newCDPSession(plain);
      await cdp.send("Emulation.setScriptExecutionDisabled", { value: true });
      await open(plain, "/runs");
      check(
        (await plain.locator(`table#runs tr[data-run=${q(live.run)}]`).count()) === 1,
        "no row for the live run in table#runs",
      );
      await open(plain, `/runs/${live.run}`);
      const drawn = await plain.locator("svg#dag g.node").count();
      check(drawn === live.tasks.length, `svg#dag has ${drawn} g.node, the run has ${live.tasks.length} tasks`);
      check(await plain.evaluate(() => window.__troupeNoJs === undefined), "(setup) evaluate works");
      const { run, task, log_text } = config.failed;
      await open(plain, `/runs/${run}/tasks/${task}`);
      check((await plain.locator("pre#log").innerText()).includes(log_text), "pre#log lacks the log text");
    } finally {
      await plain.close();
    }
  });

  await step("no dialog opened and no page script threw", async () => {
    check(dialogs.length === 0, `dialogs opened: ${dialogs.join("; ")}`);
    check(pageErrors.length === 0, `page errors: ${pageErrors.join("; ")}`);
  });
} finally {
  await context.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
