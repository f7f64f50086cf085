// The account pages in a real browser: headless Debian Chromium driven by playwright-core.
// Starts its own stemsphere-server (SQLite in a temp dir, a free loopback port), then runs the
// device approval (approve and deny, the polling client getting tokens or access_denied), the
// whole account journey, and attacks (CSRF from another origin, a forged cookie, another
// account's session, script in names). Saves a screenshot of every page at desktop and phone
// width. Prints "ok"/"not ok" per check and exits non-zero when one fails.
//
// usage: node account_pages.mjs SERVER_BINARY SCREENSHOT_DIR [STEMSPHERE_ACCOUNT_BINARY]
import { spawn, execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const [serverBin, shotDir, accountBin] = process.argv.slice(2);
const nodeDir = process.env.STEMSPHERE_NODE_DIR || '/var/cache/stemsphere/node';
const require = createRequire(path.join(nodeDir, 'node_modules', '.keep'));
const { chromium } = require('playwright-core');

let failures = 0;
function check(ok, what, detail = '') {
  console.log(`${ok ? 'ok' : 'not ok'} - ${what}${ok || !detail ? '' : ` (${detail})`}`);
  if (!ok) failures++;
  return ok;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
    s.on('error', reject);
  });
}

// RFC 6238 TOTP (SHA-1, 6 digits, 30 s) from a base32 secret.
function totp(secretB32, stepOffset = 0) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of secretB32.replace(/[\s=]/g, '').toUpperCase()) {
    bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  }
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const step = Math.floor(Date.now() / 1000 / 30) + stepOffset;
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(step));
  const h = createHmac('sha1', key).update(msg).digest();
  const o = h[h.length - 1] & 15;
  const n = ((h[o] & 0x7f) << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3];
  return { code: String(n % 1000000).padStart(6, '0'), step };
}
async function nextTotpStep(afterStep) {
  while (Math.floor(Date.now() / 1000 / 30) <= afterStep) await sleep(500);
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'stemsphere-web-'));
const dbUrl = `sqlite:${path.join(work, 'ledger.db')}`;
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
fs.mkdirSync(shotDir, { recursive: true });

const server = spawn(serverBin, ['--db', dbUrl, '--listen', `127.0.0.1:${port}`, '--public-url', base,
  '--signin-rate', '200', '--signup-rate', '100', '--sweep-ms', '1000'], { stdio: ['ignore', 'pipe', 'inherit'] });
let browser;
let evil;
const children = [server];

async function api(method, route, body, token) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(base + route, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, body: json };
}
function admin(...args) {
  return JSON.parse(execFileSync(serverBin, ['admin', '--db', dbUrl, ...args], { encoding: 'utf8' }));
}
function mailTo(email) {
  const mails = admin('outbox').filter((m) => m.to === email);
  return mails.length ? mails[mails.length - 1].body : '';
}
async function pollToken(deviceCode, clientId = 'stemsphere-account', maxSeconds = 40) {
  let interval = 5;
  const until = Date.now() + maxSeconds * 1000;
  while (Date.now() < until) {
    const r = await api('POST', '/v1/device/token', {
      grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: deviceCode, client_id: clientId });
    if (r.status === 200) return r;
    if (r.body.error === 'slow_down') interval = r.body.interval;
    else if (r.body.error !== 'authorization_pending') return r;
    await sleep(interval * 1000 + 100);
  }
  return { status: 0, body: { error: 'timeout' } };
}

const shots = [];
// A screenshot of the page as it is now, at desktop and at phone width.
async function shoot(page, name) {
  for (const [label, size] of [['desktop', { width: 1280, height: 900 }], ['phone', { width: 375, height: 740 }]]) {
    await page.setViewportSize(size);
    const file = path.join(shotDir, `${name}-${label}.png`);
    await page.screenshot({ path: file, fullPage: true });
    shots.push(file);
  }
  // Nothing may scroll sideways on a phone.
  await page.setViewportSize({ width: 375, height: 740 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `${name}: fits a 375 px wide phone screen`, `${overflow} px too wide`);
  await page.setViewportSize({ width: 1280, height: 900 });
}

async function signUpAndVerify(page, name, email, password) {
  await page.goto(`${base}/signup`);
  await page.getByLabel('Your name').fill(name);
  await page.getByLabel('Email address').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Create account' }).click();
  const link = (mailTo(email).match(/https?:\/\/\S+\/verify\?token=\S+/) || [])[0];
  return link;
}
async function signIn(page, email, password, code) {
  await page.goto(`${base}/signin`);
  await page.getByLabel('Email address').fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  if (code) await page.getByLabel(/Two-factor code/).fill(code);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

try {
  for (let i = 0; i < 100; i++) {
    try { if ((await fetch(`${base}/v1/health`)).ok) break; } catch { /* not yet */ }
    await sleep(100);
  }
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const page = await ctx.newPage();
  page.on('dialog', (d) => d.accept());
  const cspViolations = [];
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text()); });

  // ---- the account journey: sign-up → verify → sign-in → 2FA → sign-in with TOTP → device → use → revoke → export → delete
  const annName = 'Ann <img src=x onerror="window.__pwned=1"> Example';
  const annEmail = 'ann@example.org';
  const annPassword = 'correct horse battery';
  await page.goto(`${base}/signup`);
  await shoot(page, 'signup');
  await page.getByRole('button', { name: 'Create account' }).click();
  check(await page.locator('.error-summary').isVisible(), 'empty sign-up form: an error summary');
  check(await page.locator('#f-email').getAttribute('aria-invalid') === 'true', 'empty sign-up form: the email field is marked invalid');
  check(await page.evaluate(() => document.activeElement?.classList.contains('error-summary')), 'empty sign-up form: focus moves to the errors');
  await shoot(page, 'signup-errors');
  const link = await signUpAndVerify(page, annName, annEmail, annPassword);
  await shoot(page, 'signup-sent');
  check(!!link && link.startsWith(`${base}/verify?token=`), 'sign-up mails a verification link', link);
  await page.goto(link);
  await shoot(page, 'verify');
  await page.getByRole('button', { name: 'Confirm my email address' }).click();
  check((await page.textContent('main')).includes('confirmed'), 'the verification link confirms the address');
  await shoot(page, 'verify-done');

  await page.goto(`${base}/signin`);
  await shoot(page, 'signin');
  await signIn(page, annEmail, annPassword);
  check(page.url() === `${base}/account`, 'sign-in leads to the account page', page.url());
  check(await page.evaluate(() => window.__pwned) === undefined, 'the account name runs no script');
  check((await page.locator('#h-profile').textContent()).includes('<img src=x onerror="window.__pwned=1">'), 'the account name is shown as text');
  await shoot(page, 'account-new');

  const cookies = await ctx.cookies();
  const session = cookies.find((c) => c.name === 'stemsphere');
  check(session && session.httpOnly && session.sameSite === 'Lax', 'the session cookie is HttpOnly and SameSite=Lax');

  // 2FA set-up: a wrong code first, then the right one; backup codes shown once.
  await page.getByRole('button', { name: 'Set up two-factor sign-in' }).click();
  check(await page.locator('svg.qr path').count() === 1, '2FA set-up draws a QR code');
  await shoot(page, 'totp-setup');
  const secret = (await page.locator('#totp-secret').textContent()).replace(/\s/g, '');
  const wrong = totp(secret, 10).code;
  await page.getByLabel('6-digit code').fill(wrong);
  await page.getByRole('button', { name: 'Turn on two-factor sign-in' }).click();
  check(await page.locator('#f-code-error').isVisible(), '2FA: a wrong code is refused at its field');
  check((await page.locator('#f-code').getAttribute('aria-describedby') || '').includes('f-code-error'), '2FA: the error is tied to the field');
  await shoot(page, 'totp-setup-error');
  const first = totp(secret);
  await page.getByLabel('6-digit code').fill(first.code);
  await page.getByRole('button', { name: 'Turn on two-factor sign-in' }).click();
  const backupCodes = await page.locator('#backup-codes li').allTextContents();
  check(backupCodes.length === 10, '2FA: ten backup codes are shown', String(backupCodes.length));
  await shoot(page, 'backup-codes');
  await page.goto(`${base}/account`);
  check(!(await page.content()).includes(backupCodes[0]), 'backup codes are not shown again');

  await page.getByRole('button', { name: 'Sign out' }).first().click();
  check(page.url().startsWith(`${base}/signin`), 'sign-out returns to sign-in');
  await page.goto(`${base}/account`);
  check(page.url().startsWith(`${base}/signin?next=`), 'signed out, the account page asks to sign in');
  await signIn(page, annEmail, annPassword);
  check(await page.locator('#f-code-error').isVisible(), 'with 2FA on, sign-in without a code is refused at the code field');
  await shoot(page, 'signin-totp-required');
  await nextTotpStep(first.step);
  await signIn(page, annEmail, annPassword, totp(secret).code);
  check(page.url() === `${base}/account`, 'sign-in with password and TOTP');

  // A device signs in through the device flow; the device name carries script.
  const deviceName = '<script>window.__pwned=2</script>Studio PC';
  const grant = await api('POST', '/v1/device/authorize', { client_id: 'stemsphere-account', device_name: deviceName });
  await page.goto(grant.body.verification_uri_complete);
  check((await page.locator('#device-name').textContent()) === deviceName, 'the device name is shown as text');
  check(await page.evaluate(() => window.__pwned) === undefined, 'the device name runs no script');
  await shoot(page, 'device-confirm');
  await page.getByRole('button', { name: 'Approve' }).click();
  check((await page.textContent('main')).includes('is signed in'), 'approval page confirms');
  await shoot(page, 'device-approved');
  const tokens = await pollToken(grant.body.device_code);
  check(tokens.status === 200 && !!tokens.body.access_token, 'the polling client receives its tokens after approval', JSON.stringify(tokens.body));
  const deviceToken = tokens.body.access_token;
  const me = await api('GET', '/v1/me', undefined, deviceToken);
  const accountId = me.body.account_id;

  // Tokens granted, one lease settled (metered use), one left open.
  admin('grant', '--account', accountId, '--amount', '100000', '--category', 'purchase', '--id', 'g-web-1', '--expires-in-days', '30');
  const lease = await api('POST', '/v1/leases', { lease_id: 'web-lease-1', device_id: tokens.body.device_id, want_ms: 600000 }, deviceToken);
  const settle = await api('POST', '/v1/leases/web-lease-1/settle', { settle_id: 'web-settle-1', used_ms: 270000 }, deviceToken);
  await api('POST', '/v1/leases', { lease_id: 'web-lease-2', device_id: tokens.body.device_id, want_ms: 120000 }, deviceToken);
  check(lease.status === 201 && settle.status === 200, 'a lease is opened and settled through the API', `${lease.status} ${settle.status}`);
  await page.goto(`${base}/account`);
  const balance = await api('GET', '/v1/balance', undefined, deviceToken);
  check((await page.locator('#balance-available').textContent()).startsWith((balance.body.available_mt / 1000).toFixed(3)),
    'the page shows the API balance', await page.locator('#balance-available').textContent());
  const tallest = await page.locator('svg.chart rect.bar').evaluateAll((bars) => Math.max(...bars.map((b) => Number(b.getAttribute('height')))));
  check(await page.locator('svg.chart rect.bar').count() === 30 && tallest > 10, 'the usage chart has 30 days and today’s bar', String(tallest));
  check((await page.locator('#usage-table tbody tr').count()) === 1 && (await page.locator('#usage-table').textContent()).includes('4.500'),
    'the usage table lists today: 4.5 min for 4.500 tokens');
  check((await page.locator('#leases').textContent()).includes('web-lease-2'), 'the open lease is listed');
  check((await page.locator('#lots').textContent()).includes('Purchased pack'), 'the grant lot is listed with its expiry');
  await shoot(page, 'account');

  // Revoke the device: its token stops working.
  const row = page.locator('#sessions tr', { hasText: 'Studio PC' });
  await row.getByRole('button', { name: /Revoke/ }).click();
  check((await page.locator('.notice').textContent()).includes('signed out'), 'revoking says so');
  const after = await api('GET', '/v1/me', undefined, deviceToken);
  check(after.status === 401, 'the revoked device loses access', String(after.status));
  const refreshed = await api('POST', '/v1/sessions/refresh', { refresh_token: tokens.body.refresh_token });
  check(refreshed.status === 401, 'the revoked device cannot refresh', String(refreshed.status));

  // Attack: a page on another origin (same site: 127.0.0.1) posts to us without and with a
  // wrong CSRF token; SameSite does not stop it here, the token must.
  const evilPort = await freePort();
  evil = http.createServer((req, res) => {
    res.setHeader('Content-Type', 'text/html');
    res.end(`<!doctype html><form id=a method=post action="${base}/signout"><button>no token</button></form>
      <form id=b method=post action="${base}/signout"><input type=hidden name=csrf value="forged"><button>wrong token</button></form>`);
  });
  await new Promise((r) => evil.listen(evilPort, '127.0.0.1', r));
  for (const id of ['a', 'b']) {
    await page.goto(`http://127.0.0.1:${evilPort}/`);
    const [resp] = await Promise.all([page.waitForNavigation(), page.click(`#${id} button`)]);
    check(resp.status() === 403, `CSRF: a form from another origin with ${id === 'a' ? 'no' : 'a wrong'} token is refused`, String(resp.status()));
    if (id === 'a') await shoot(page, 'csrf-refused');
  }
  await page.goto(`${base}/account`);
  check(page.url() === `${base}/account`, 'CSRF: still signed in afterwards');

  // Attack: a cookie from another account. Bob's signed claims with Ann's signature, and Ann's
  // cookie used on Bob's session id.
  const bobEmail = 'bob@example.org';
  const bobCtx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const bob = await bobCtx.newPage();
  await bob.goto(await signUpAndVerify(bob, 'Bob', bobEmail, 'bobs password 42'));
  await bob.getByRole('button', { name: 'Confirm my email address' }).click();
  await signIn(bob, bobEmail, 'bobs password 42');
  const bobCookie = (await bobCtx.cookies()).find((c) => c.name === 'stemsphere').value;
  const annCookie = (await ctx.cookies()).find((c) => c.name === 'stemsphere').value;
  const spliced = bobCookie.split('.').slice(0, 2).join('.') + '.' + annCookie.split('.')[2];
  const forgedCtx = await browser.newContext();
  await forgedCtx.addCookies([{ name: 'stemsphere', value: spliced, url: base }]);
  const forged = await forgedCtx.newPage();
  await forged.goto(`${base}/account`);
  check(forged.url().startsWith(`${base}/signin`), 'a forged cookie (another account’s claims) is not signed in');
  await forgedCtx.close();
  const bobSessions = await bob.locator('#sessions form input[name=session_id]').evaluateAll((els) => els.map((e) => e.value));
  const annCsrf = await page.locator('input[name=csrf]').first().inputValue();
  const cross = await ctx.request.post(`${base}/account/sessions/revoke`, { form: { csrf: annCsrf, session_id: bobSessions[0] }, maxRedirects: 0 });
  check(cross.status() === 404, 'Ann’s cookie cannot revoke Bob’s session', String(cross.status()));
  await bob.goto(`${base}/account`);
  check(bob.url() === `${base}/account`, 'Bob stays signed in');

  // Device approval by entering the code, then deny: the client gets access_denied.
  const grant2 = await api('POST', '/v1/device/authorize', { client_id: 'stemsphere-render', device_name: 'Render box' });
  await bob.goto(`${base}/device`);
  await shoot(bob, 'device-entry');
  await bob.getByLabel('Code').fill(grant2.body.user_code.toLowerCase().replace('-', ''));
  await bob.getByRole('button', { name: 'Continue' }).click();
  check((await bob.locator('#device-name').textContent()) === 'Render box', 'a typed code (any case, no dash) finds the device');
  await bob.getByRole('button', { name: 'Deny' }).click();
  await shoot(bob, 'device-denied');
  const denied = await pollToken(grant2.body.device_code, 'stemsphere-render');
  check(denied.body.error === 'access_denied', 'after "deny" the polling client gets access_denied', JSON.stringify(denied.body));
  await bob.goto(`${base}/device?user_code=BCDF-GHJK`);
  check((await bob.textContent('main')).includes('unknown, already used or has expired'), 'an unknown code gets a clear page');
  await shoot(bob, 'device-unknown');
  await bob.goto(`${base}/device?user_code=12`);
  await shoot(bob, 'device-entry-error');

  // Full device sign-in with the CLI, when it is built.
  if (accountBin && fs.existsSync(accountBin)) {
    for (const decision of ['approve', 'deny']) {
      const home = fs.mkdtempSync(path.join(work, 'cli-'));
      const cli = spawn(accountBin, ['login', '--server', base], { env: { ...process.env, XDG_CONFIG_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(cli);
      let out = '';
      cli.stdout.on('data', (d) => { out += d; });
      cli.stderr.on('data', (d) => { out += d; });
      const exited = new Promise((r) => cli.on('exit', (code) => r(code)));
      let code = null;
      for (let i = 0; i < 100 && !code; i++) {
        code = (out.match(/\b[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}\b/) || [])[0];
        if (!code) await sleep(100);
      }
      if (!check(!!code, `CLI ${decision}: stemsphere-account login prints a user code`, out)) { cli.kill(); continue; }
      await bob.goto(`${base}/device?user_code=${code}`);
      await bob.getByRole('button', { name: decision === 'approve' ? 'Approve' : 'Deny' }).click();
      const status = await Promise.race([exited, sleep(45000).then(() => 'timeout')]);
      if (decision === 'approve') {
        check(status === 0, 'CLI approve: stemsphere-account login ends signed in', `${status}: ${out}`);
        check(fs.existsSync(path.join(home, 'stemsphere')), 'CLI approve: credentials stored under XDG_CONFIG_HOME/stemsphere');
      } else {
        // docs/account.md: exit code 5 = sign-in declined or expired.
        check(status === 5, 'CLI deny: stemsphere-account login ends declined (exit 5)', `${status}: ${out}`);
      }
    }
  } else {
    console.log('# stemsphere-account not built: the CLI device sign-in checks are skipped');
  }
  await bobCtx.close();

  // Export, password page, deletion.
  await page.goto(`${base}/account`);
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: /Download my data/ }).click()]);
  const exported = JSON.parse(fs.readFileSync(await download.path(), 'utf8'));
  check(exported.account.email === annEmail && exported.usage.length === 1 && exported.leases.length === 2 &&
    exported.ledger_transfers.length > 0, 'the export holds the account, usage, leases and ledger entries');
  await page.goto(`${base}/account/password`);
  await shoot(page, 'password');
  await page.getByLabel('Current password').fill('not my password');
  await page.getByLabel('New password').fill('another good password');
  await page.getByRole('button', { name: 'Change password' }).click();
  check(await page.locator('#f-current_password-error').isVisible(), 'a wrong current password is refused at its field');
  await shoot(page, 'password-error');

  await page.goto(`${base}/account/delete`);
  check((await page.textContent('main')).includes('5 years'), 'the deletion page says what is kept');
  await shoot(page, 'delete');
  await page.getByLabel('Your password').fill(annPassword);
  await page.getByRole('button', { name: 'Delete my account' }).click();
  check(await page.locator('#f-code-error').isVisible(), 'deletion without the second factor is refused');
  await page.getByLabel('Your password').fill(annPassword);
  await page.getByLabel('Two-factor code').fill(backupCodes[0]);
  await page.getByRole('button', { name: 'Delete my account' }).click();
  check((await page.textContent('main')).includes('deleted'), 'deletion with password and backup code');
  await shoot(page, 'deleted');
  await signIn(page, annEmail, annPassword, totp(secret).code);
  check(await page.locator('#f-password-error').isVisible() && page.url().startsWith(`${base}/signin`), 'sign-in fails after deletion');
  await shoot(page, 'signin-after-delete');
  check(cspViolations.length === 0, 'no Content-Security-Policy violation on any page', cspViolations.join(' | '));
} catch (e) {
  check(false, 'the run finished', e.stack || String(e));
} finally {
  if (browser) await browser.close();
  if (evil) evil.close();
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  fs.rmSync(work, { recursive: true, force: true });
}
console.log(`# ${shots.length} screenshots in ${shotDir}`);
console.log(failures ? `FAILED: ${failures} check(s)` : 'all checks passed');
process.exit(failures ? 1 : 0);
