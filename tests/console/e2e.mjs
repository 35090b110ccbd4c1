// The console end to end in Debian's headless Chromium, driven by playwright-core (which
// never downloads a browser). Started by tests/kafka/test_console.py, which owns the broker,
// the service and the console; the two talk over stdin/stdout:
//   this script: logs in, opens the inbox, prints READY;
//   the test:    makes the service raise alerts, writes GO;
//   this script: sees them arrive live, opens the case, reads the explanation and the events,
//                disposes it, releases the lock (a control record), visits overview and
//                precision, checks a hostile alert shows as text, prints DONE {json}.
// A screenshot of each screen goes to $ARTIFACTS.
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";
import { join } from "node:path";

const env = (k) => {
  const v = process.env[k];
  if (v === undefined) throw new Error(`${k} is not set`);
  return v;
};
const base = env("CONSOLE_URL");
const shots = env("ARTIFACTS");
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const shot = (page, name) => page.screenshot({ path: join(shots, name), fullPage: true });

// Find an entity's case in the inbox (retrying while its alert may still be on its way) and
// open it.
async function openCase(page, entity) {
  for (let i = 0; i < 60; i++) {
    await page.goto(`${base}/inbox?q=${encodeURIComponent(entity)}`);
    if (await page.locator("#cases tbody tr a").count()) break;
    await page.waitForTimeout(500);
  }
  await Promise.all([page.waitForURL(/\/cases\/\d+$/), page.click("#cases tbody tr a")]);
  return page.url();
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const result = {};
let page;
try {
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on("framenavigated", (f) => console.error(`navigated: ${f.url()}`));
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("dialog", (d) => { problems.push(`dialog: ${d.message()}`); d.dismiss(); });

  // Unauthenticated: the login page and nothing else.
  await page.goto(`${base}/inbox`);
  if (!page.url().endsWith("/login")) throw new Error(`not sent to login: ${page.url()}`);
  await shot(page, "login.png");
  await page.fill("input[name=user]", env("CONSOLE_USER"));
  await page.fill("input[name=password]", env("CONSOLE_PASSWORD"));
  await Promise.all([page.waitForURL(`${base}/inbox`), page.click("#login")]);
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === "sg_session");
  if (!session || !session.httpOnly || session.sameSite !== "Strict") throw new Error(`cookie flags: ${JSON.stringify(session)}`);

  console.log("READY");
  const go = await lines.next();
  if (go.value !== "GO") throw new Error(`expected GO, got ${go.value}`);

  // Alerts arrive live (Server-Sent Events), without a reload.
  const min = Number(env("LIVE_MIN"));
  await page.waitForFunction((n) => document.querySelectorAll("#live-rows tr").length >= n, min, { timeout: 90000 });
  result.live_rows = await page.locator("#live-rows tr").count();
  await shot(page, "inbox.png");

  // Open the card's case from the inbox.
  const caseUrl = await openCase(page, env("CASE_ENTITY"));
  const pin = page.locator(".alert", { hasText: "pin_consecutive_wrong" });
  result.explanation = (await pin.locator(".reason").textContent()).trim();
  if (!/wrong PIN/i.test(result.explanation)) throw new Error(`explanation: ${result.explanation}`);
  await pin.locator("details summary").click();
  result.features = await pin.locator("table.features tr").count();
  result.events = await pin.locator("table.events tbody tr").count();
  const models = page.locator(".alert .explain");
  result.model_explanation = (await models.count()) ? (await models.first().textContent()).trim() : "";
  await shot(page, "case.png");

  // Dispose it.
  await page.selectOption("#dispose-form select[name=disposition]", "confirmed_fraud");
  await Promise.all([page.waitForURL(caseUrl + "#dispose"), page.click("#dispose")]);
  result.disposition = (await page.locator("#case-disposition").textContent()).trim();

  // Release the lock: a control record for the switch, the analyst as actor, a reason.
  await page.selectOption("#lock-op", "unlock");
  await page.fill("#lock-reason", "customer verified by phone");
  await Promise.all([page.waitForURL(caseUrl + "#locks"), page.click("#lock-submit")]);
  const history = await page.locator("#history").textContent();
  if (!history.includes("unlock_requested")) throw new Error(`history: ${history}`);
  await shot(page, "case-after-actions.png");

  await page.goto(`${base}/overview`);
  if (!(await page.locator("#alerts-chart rect").count())) throw new Error("no chart on the overview");
  await shot(page, "overview.png");
  await page.goto(`${base}/precision`);
  await shot(page, "precision.png");

  // A hostile alert: its markup is shown as text and never runs.
  await openCase(page, env("XSS_ENTITY"));
  const text = await page.locator("main").textContent();
  result.xss_shown_as_text = text.includes(env("XSS_TEXT"));
  result.xss_executed = (await page.evaluate(() => window.__xss)) ?? null;
  await shot(page, "case-xss.png");
  if (problems.length) throw new Error(problems.join("; "));
  console.log("DONE " + JSON.stringify(result));
} catch (e) {
  console.error(e);
  if (page) await shot(page, "failure.png").catch(() => {});
  console.log("FAILED " + String(e.message || e).replace(/\n/g, " "));
  process.exitCode = 1;
} finally {
  await browser.close();
  process.exit();
}
