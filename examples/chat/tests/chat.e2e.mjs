// Drives examples/chat in headless Chromium (Debian's, through playwright-core) as two users.
// Run by the Rust test tests/api/chat_browser.rs, which starts the server and restarts it
// when this script prints RESTART (it answers RESTARTED on stdin).
//
//   node chat.e2e.mjs URL SCREENSHOT_DIR
//
// Exits non-zero with a message on the first failed expectation.
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";
import { mkdirSync } from "node:fs";

const [url, shots] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });
const lines = createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => lines.once("line", resolve));

const problems = [];
let restarting = false;
const watch = (page, who) => {
  page.on("console", (m) => {
    if (m.type() === "error" && !restarting) problems.push(`${who} console: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`${who} page error: ${e.message}`));
  page.on("requestfailed", (r) => {
    if (!restarting) problems.push(`${who} request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
  page.on("response", (r) => {
    if (r.status() >= 500 || (r.status() === 404 && !restarting)) problems.push(`${who} got ${r.status()} from ${r.url()}`);
  });
};

const fail = (message) => {
  console.error(`FAIL: ${message}`);
  process.exit(1);
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const alice = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  const bob = await (await browser.newContext({ viewport: { width: 390, height: 844 } })).newPage();
  watch(alice, "alice");
  watch(bob, "bob");

  const register = async (page, email, name) => {
    await page.goto(url);
    await page.fill("#email", email);
    await page.fill("#name", name);
    await page.fill("#password", "long enough password");
    await page.click("#register");
    await page.waitForSelector("#app:not([hidden])", { timeout: 10000 });
    await page.waitForFunction(() => document.querySelector("#status").textContent === "live", null, { timeout: 10000 });
    await page.waitForFunction(() => document.querySelector("#room-title").textContent.includes("lobby"), null, { timeout: 10000 });
  };
  await register(alice, "alice@example.com", "Alice");
  await register(bob, "bob@example.com", "Bob");

  // Presence: each sees both.
  const sees = (page, name) =>
    page.waitForFunction(
      (n) => Array.from(document.querySelectorAll(".member")).some((e) => e.textContent === n),
      name,
      { timeout: 5000 },
    );
  await sees(alice, "Bob").catch(() => fail("Alice does not see Bob present"));
  await sees(bob, "Alice").catch(() => fail("Bob does not see Alice present"));

  // Typing shows on the other side.
  await alice.type("#text", "Hel");
  await bob
    .waitForFunction(() => document.querySelector("#typing").textContent.includes("Alice is typing"), null, { timeout: 3000 })
    .catch(() => fail("Bob does not see Alice typing"));

  // A message typed by Alice appears for Bob within a second, as text (never as HTML).
  const send = async (page, text) => {
    await page.fill("#text", text);
    await page.press("#text", "Enter");
  };
  const arrives = async (page, text, within) => {
    const start = Date.now();
    await page.waitForFunction(
      (t) => Array.from(document.querySelectorAll("#messages .text")).some((e) => e.textContent === t),
      text,
      { timeout: within },
    );
    return Date.now() - start;
  };
  const hostile = "Hello <img src=x onerror=alert(1)> Bob";
  await send(alice, hostile);
  const took = await arrives(bob, hostile, 1000).catch(() => fail("Alice's message did not reach Bob within 1 s"));
  console.log(`delivered in ${took} ms`);
  if (await bob.$("#messages img")) fail("a message was rendered as HTML");
  await send(bob, "Hi Alice!");
  await arrives(alice, "Hi Alice!", 1000).catch(() => fail("Bob's reply did not reach Alice within 1 s"));
  await alice.screenshot({ path: `${shots}/alice-desktop.png` });
  await bob.screenshot({ path: `${shots}/bob-phone.png` });

  // The server restarts: both pages reconnect by themselves and carry on.
  restarting = true;
  console.log("RESTART");
  const answer = await nextLine();
  if (answer !== "RESTARTED") fail(`unexpected answer ${answer}`);
  for (const [page, who] of [[alice, "Alice"], [bob, "Bob"]]) {
    await page
      .waitForFunction(() => document.querySelector("#status").textContent === "live", null, { timeout: 15000 })
      .catch(() => fail(`${who}'s page did not reconnect after the restart`));
  }
  restarting = false;
  await sees(alice, "Bob").catch(() => fail("presence did not come back after the restart"));
  await send(bob, "Still here after the restart");
  await arrives(alice, "Still here after the restart", 2000).catch(() => fail("no live delivery after the restart"));

  // History on join: a fresh page shows what was said.
  await bob.reload();
  await bob.waitForSelector("#app:not([hidden])");
  await arrives(bob, "Hi Alice!", 5000).catch(() => fail("history was not loaded on join"));

  // A private room stays Alice's: Bob does not see it, even after a reload.
  await alice.fill("#room-name", "secret");
  await alice.check("#room-private");
  await alice.click("#new-room button");
  await alice.waitForFunction(() => document.querySelector("#room-title").textContent.includes("secret"));
  await send(alice, "for my eyes only");
  await arrives(alice, "for my eyes only", 2000);
  await bob.reload();
  await bob.waitForSelector("#app:not([hidden])");
  await bob.waitForFunction(() => document.querySelectorAll("#rooms button").length > 0);
  const bobRooms = await bob.$$eval("#rooms button", (bs) => bs.map((b) => b.textContent));
  if (bobRooms.some((r) => r.includes("secret"))) fail(`Bob sees Alice's private room: ${bobRooms}`);
  await alice.screenshot({ path: `${shots}/alice-private-room.png` });

  if (problems.length) fail(problems.join("\n"));
  console.log("OK");
} finally {
  await browser.close();
}
process.exit(0);
