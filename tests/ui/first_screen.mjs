// benches/ui.rs: the first screen of a structure in Chromium, from
// navigation to the load event, with the tree rendered. Prints medians.
import { chromium } from "playwright-core";

const [url] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
const times = [];
for (let i = 0; i < 10; i++) {
  const start = performance.now();
  await page.goto(url, { waitUntil: "load" });
  await page.locator(".tree li").first().waitFor();
  times.push(performance.now() - start);
}
await browser.close();
times.sort((a, b) => a - b);
console.log(`first screen to the load event: median ${times[5].toFixed(1)} ms, max ${times[9].toFixed(1)} ms (10 loads)`);
