// Opens the example service's web page in headless Chromium (Debian's, driven by
// playwright-core), picks STREAM, waits until COUNT events are rendered, takes a screenshot,
// and prints what the page shows as one JSON line: {"state", "resume", "url", "titles"}.
// With RESUME_COUNT, it first disconnects after COUNT events and connects again, which
// resumes with the page's last id in `?last-event-id=`, and waits for RESUME_COUNT more.
// Exits 1 if that does not happen within TIMEOUT_MS.
//
// Usage: node page.mjs BASE_URL STREAM COUNT SCREENSHOT_PATH [TIMEOUT_MS] [RESUME_COUNT]
import { chromium } from 'playwright-core';

const [base, stream, count, screenshot, timeoutMs = '60000', resumeCount = '0'] =
  process.argv.slice(2);
const timeout = Number(timeoutMs);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
  ],
  timeout,
});
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  page.setDefaultTimeout(timeout);
  await page.goto(base);
  await page.locator(`#streams input[value="${stream}"]`).check();
  const rendered = (n) => page.waitForFunction(
    (n) => document.querySelectorAll('#events li').length >= n,
    n,
    { timeout },
  );
  await rendered(Number(count));
  if (Number(resumeCount) > 0) {
    await page.locator('#disconnect').click();
    await page.locator('#connect').click();
    await rendered(Number(count) + Number(resumeCount));
  }
  await page.screenshot({ path: screenshot, fullPage: true });
  const shown = await page.evaluate(() => ({
    state: document.querySelector('#state').textContent,
    resume: document.querySelector('#resume').textContent,
    url: document.querySelector('#url').textContent,
    titles: [...document.querySelectorAll('#events li')].map((item) => item.textContent),
  }));
  process.stdout.write(`${JSON.stringify(shown)}\n`);
} finally {
  await browser.close();
}
