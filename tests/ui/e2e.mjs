// The web UI in a real browser: Debian's Chromium, driven by playwright-core.
// tests/ui.rs starts `trellis ui` over the quickstart and runs one step:
//
//   node e2e.mjs URL STEP SHOTS_DIR ISSUES_FILE
//
// Each step exits 0 when everything it checks holds, and prints why not
// otherwise. Screenshots of the pages go to SHOTS_DIR.
import { chromium } from "playwright-core";
import { readFileSync, writeFileSync } from "node:fs";

const [url, step, shots, issuesFile] = process.argv.slice(2);
// Console errors a step provokes on purpose (a refused approval's 409).
const expected = [];

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const steps = {
  // The overview lists the quickstart's three synchronizers with their status.
  async overview(page) {
    await page.goto(url + "/");
    const rows = page.locator("tr[data-synchronizer]");
    check((await rows.count()) === 3, `the overview lists ${await rows.count()} synchronizers, not 3`);
    for (const phase of await page.locator("tr[data-synchronizer] .phase").allTextContents()) {
      check(phase === "Running", `a synchronizer shows ${phase}, not Running`);
    }
    check((await page.locator("text=default/children").count()) > 0, "default/children is not listed");
    await page.screenshot({ path: `${shots}/overview.png`, fullPage: true });
    // A namespace filter for a namespace with nothing in it shows nothing.
    await page.goto(url + "/?namespace=elsewhere");
    check((await rows.count()) === 0, "the namespace filter does not filter");
  },

  // The tree opens row by row, and a drag puts PLAT-15 under PLAT-1.
  async drag(page) {
    await page.goto(url + "/structures/default/roadmap");
    check((await page.locator(".tree > li").count()) === 2, "the closed tree does not show the two folders");
    await page.locator('li[data-row="Platform/"] > .line > a.toggle').click();
    await page.locator('li[data-row="PLAT-2"] > .line > a.toggle').click();
    await page.locator('li[data-row="PLAT-1"] > .line > a.toggle').click();
    const summary = await page.locator('li[data-row="PLAT-15"] > .line .summary').textContent();
    check(summary === "SLO dashboards for billing and auth APIs", `PLAT-15 shows "${summary}"`);
    await page.screenshot({ path: `${shots}/structure.png`, fullPage: true });
    await Promise.all([
      page.waitForNavigation(),
      page.locator('li[data-row="PLAT-15"] > .line').dragTo(page.locator('li[data-row="PLAT-1"] > .line')),
    ]);
    // Back on the same page, the row is under PLAT-1 and has the focus.
    const parent = await page.locator('li[data-row="PLAT-15"]').evaluate((e) => e.parentElement.closest("li").dataset.row);
    check(parent === "PLAT-1", `after the drag PLAT-15 is under ${parent}`);
    const focused = await page.evaluate(() => document.activeElement.dataset.row);
    check(focused === "PLAT-15", `after the drag ${focused} has the focus`);
  },

  // A keyboard move: Alt+ArrowDown puts PLAT-12 after PLAT-15 under PLAT-2.
  async keyboard(page) {
    await page.goto(url + "/structures/default/roadmap");
    await page.locator('li[data-row="Platform/"] > .line > a.toggle').click();
    await page.locator('li[data-row="PLAT-2"] > .line > a.toggle').click();
    await page.locator('li[data-row="PLAT-12"]').focus();
    await Promise.all([page.waitForNavigation(), page.keyboard.press("Alt+ArrowDown")]);
    const order = await page.locator('li[data-row="PLAT-2"] > ul > li').evaluateAll((items) => items.map((e) => e.dataset.row));
    check(order[0] !== "PLAT-12" && order.indexOf("PLAT-12") === 1, `after Alt+ArrowDown PLAT-2 holds ${order}`);
  },

  // The plans page shows the plan and its hash; approving it after the
  // tracker changed is refused, approving the current plan applies it.
  async approve(page) {
    await page.goto(url + "/plans");
    const plan = page.locator("section.plan").last();
    const hash = await plan.getAttribute("data-hash");
    check((await plan.locator("pre.diff").count()) > 0, "the plan shows no outline diff");
    await page.screenshot({ path: `${shots}/plans.png`, fullPage: true });
    // The tracker changes before the person clicks: what they reviewed is stale.
    const issues = readFileSync(issuesFile, "utf8");
    const changed = issues.replace(/(key: PLAT-16\n[\s\S]*?)parent: PLAT-2/, "$1parent: PLAT-1");
    check(changed !== issues, "PLAT-16's parent is not in the issues file");
    writeFileSync(issuesFile, changed);
    expected.push(/status of 409/);
    const [stale] = await Promise.all([page.waitForNavigation(), plan.locator("button").click()]);
    check(stale.status() === 409, `a stale approval got ${stale.status()}, not 409`);
    const refusal = await page.locator(".error").textContent();
    check(refusal.includes(hash.slice(0, 8)), `the refusal does not name the approved hash: ${refusal}`);
    // The current plan, approved, applies and shows as a job.
    await page.goto(url + "/plans");
    const current = page.locator("section.plan").last();
    check((await current.getAttribute("data-hash")) !== hash, "the plan did not change with the tracker");
    const [started] = await Promise.all([page.waitForNavigation(), current.locator("button").click()]);
    check(/\/runs\/\d+$/.test(started.url()), `applying led to ${started.url()}`);
    // The run page follows the run by itself until it ends.
    await page.locator(".state.succeeded").waitFor({ timeout: 20000 });
    const rows = await page.locator(".progress .counts").last().textContent();
    check(/^(\d+) of \1$/.test(rows) && !rows.startsWith("0 "), `the run's rows read ${rows}`);
    await page.screenshot({ path: `${shots}/run.png`, fullPage: true });
    await page.goto(url + "/jobs");
    check((await page.locator("table.jobs tbody tr").count()) >= 4, "the new jobs are not listed");
  },
};

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
let failed = false;
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  const problems = [];
  page.on("console", (m) => {
    if (m.type() === "error" && !expected.some((e) => e.test(m.text()))) problems.push(m.text());
  });
  page.on("pageerror", (e) => problems.push(e.message));
  await steps[step](page);
  // A Content-Security-Policy violation or a script error is a failure too.
  check(problems.length === 0, `the browser reported: ${problems.join("; ")}`);
  console.log(`${step}: ok`);
} catch (error) {
  console.error(`${step}: ${error.message}`);
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
