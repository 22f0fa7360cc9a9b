// Opens the example service's web page in headless Chromium (Debian's, driven by
// playwright-core), picks STREAM, waits until COUNT events are rendered and counted in the
// chart, takes a screenshot, and prints what the page shows as one JSON line:
// {"state", "resume", "url", "titles", "chart": {"bars", "series", "total", "legend",
// "painted"}}, where `painted` is the number of the chart canvas's pixels in a series
// colour. With RESUME_COUNT, it first disconnects after COUNT events and connects again,
// which resumes with the page's last id in `?last-event-id=`, and waits for RESUME_COUNT
// more.
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
  // The chart redraws every second: wait until it has drawn at least COUNT events.
  await page.waitForFunction(
    (n) => Number(document.querySelector('#chart').dataset.total) >= n,
    Number(count),
    { timeout },
  );
  await page.screenshot({ path: screenshot, fullPage: true });
  const shown = await page.evaluate(() => ({
    state: document.querySelector('#state').textContent,
    resume: document.querySelector('#resume').textContent,
    url: document.querySelector('#url').textContent,
    titles: [...document.querySelectorAll('#events li')].map((item) => item.textContent),
    chart: (() => {
      const canvas = document.querySelector('#chart');
      const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
      let painted = 0;
      for (let i = 0; i < data.length; i += 4) {
        const [r, g, b, a] = [data[i], data[i + 1], data[i + 2], data[i + 3]];
        if (a > 0 && Math.max(r, g, b) - Math.min(r, g, b) > 60) painted += 1;
      }
      return {
        bars: Number(canvas.dataset.bars),
        series: Number(canvas.dataset.series),
        total: Number(canvas.dataset.total),
        legend: [...document.querySelectorAll('#legend li')].map((item) => item.textContent),
        painted,
      };
    })(),
  }));
  process.stdout.write(`${JSON.stringify(shown)}\n`);
} finally {
  await browser.close();
}
