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

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const result = {};
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
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
  await page.goto(`${base}/inbox?q=${encodeURIComponent(env("CASE_ENTITY"))}`);
  await Promise.all([page.waitForURL(/\/cases\/\d+$/), page.click("#cases tbody tr a")]);
  const caseUrl = page.url();
  result.explanation = (await page.locator(".alert .reason").first().textContent()).trim();
  if (!/wrong PIN/i.test(result.explanation)) throw new Error(`explanation: ${result.explanation}`);
  await page.locator(".alert details summary").first().click();
  result.events = await page.locator(".alert table.events tbody tr").count();
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
  await page.goto(`${base}/inbox?q=${encodeURIComponent(env("XSS_ENTITY"))}`);
  await Promise.all([page.waitForURL(/\/cases\/\d+$/), page.click("#cases tbody tr a")]);
  const text = await page.locator("main").textContent();
  result.xss_shown_as_text = text.includes(env("XSS_TEXT"));
  result.xss_executed = (await page.evaluate(() => window.__xss)) ?? null;
  await shot(page, "case-xss.png");
  if (problems.length) throw new Error(problems.join("; "));
  console.log("DONE " + JSON.stringify(result));
} catch (e) {
  console.error(e);
  console.log("FAILED " + String(e.message || e).replace(/\n/g, " "));
  process.exitCode = 1;
} finally {
  await browser.close();
  process.exit();
}
