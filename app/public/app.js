// keepsake demo page: plain browser ES module, no framework, no build step.
// The HTTP view (#session-*, #basket-list) is what the API answered; the Live panel (#live-*)
// shows what the server pushes over the read-only WebSocket /ws.

const $ = (sel) => {
  const el = document.querySelector(sel);
  if (!el) throw new Error(`missing element ${sel}`);
  return el;
};

const els = {
  error: $('#error'),
  sessionUser: $('#session-user'),
  sessionAuth: $('#session-auth'),
  sessionName: $('#session-name'),
  nameForm: $('#name-form'),
  nameInput: $('#name-input'),
  loginForm: $('#login-form'),
  usernameInput: $('#username-input'),
  logout: $('#logout'),
  addForm: $('#add-form'),
  skuInput: $('#sku-input'),
  qtyInput: $('#qty-input'),
  basketList: $('#basket-list'),
  basketEmpty: $('#basket-empty'),
  liveStatus: $('#live-status'),
  liveUser: $('#live-user'),
  liveAuth: $('#live-auth'),
  liveName: $('#live-name'),
  liveBasket: $('#live-basket'),
  liveFacts: $('#live-facts'),
  liveUpdated: $('#live-updated'),
  liveNote: $('#live-note'),
  reconnect: $('#reconnect'),
  devicesCard: $('#devices-card'),
  devicesList: $('#devices-list'),
  revokeOthers: $('#revoke-others'),
};

/** Last session view seen over HTTP: {user, authenticated, name, basket}. */
const view = { user: null, authenticated: false, name: null, basket: [] };

// ---------------------------------------------------------------- HTTP

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const init = { method, headers: { accept: 'application/json' }, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'ERR_NETWORK', 'The server could not be reached.');
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const err = data && data.error;
    throw new ApiError(
      res.status,
      (err && err.code) || `HTTP_${res.status}`,
      (err && err.message) || `${method} ${path} failed with HTTP ${res.status}`,
    );
  }
  return data;
}

function showError(err) {
  if (err instanceof ApiError) {
    els.error.textContent = `${err.message} (${err.code}${err.status ? `, HTTP ${err.status}` : ''})`;
  } else {
    els.error.textContent = String((err && err.message) || err);
  }
}

function clearError() {
  els.error.textContent = '';
}

/** Runs one user action: disables its form while in flight and shows any error. */
async function action(form, fn) {
  const controls = form ? Array.from(form.querySelectorAll('button, input')) : [];
  controls.forEach((c) => { c.disabled = true; });
  try {
    await fn();
    clearError();
    return true;
  } catch (err) {
    showError(err);
    return false;
  } finally {
    controls.forEach((c) => { c.disabled = false; });
  }
}

function basketText(items) {
  if (!Array.isArray(items) || items.length === 0) return 'empty';
  return items.map((i) => `${i.sku} × ${i.qty}`).join(', ');
}

function setText(el, value, emptyText) {
  const empty = value === null || value === undefined || value === '';
  el.textContent = empty ? emptyText : String(value);
  el.classList.toggle('empty', empty);
}

function renderView() {
  setText(els.sessionUser, view.user, '…');
  els.sessionAuth.textContent = view.authenticated ? 'logged in' : 'anonymous';
  els.sessionAuth.classList.toggle('on', !!view.authenticated);
  setText(els.sessionName, view.name, 'no name yet');

  els.basketList.replaceChildren(
    ...view.basket.map((item) => {
      const li = document.createElement('li');
      li.dataset.sku = item.sku;
      const label = document.createElement('span');
      label.className = 'item-label';
      const sku = document.createElement('span');
      sku.className = 'mono';
      sku.textContent = item.sku;
      const qty = document.createElement('span');
      qty.className = 'qty';
      qty.textContent = `× ${item.qty}`;
      label.append(sku, ' ', qty);
      const btn = document.createElement('button');
      btn.type = 'button';
      btn.className = 'remove secondary';
      btn.textContent = 'Remove';
      btn.setAttribute('aria-label', `Remove ${item.sku}`);
      btn.addEventListener('click', () => {
        void action(null, async () => {
          btn.disabled = true;
          const res = await api('DELETE', `/api/basket/items/${encodeURIComponent(item.sku)}`);
          applyItems(res.items);
        });
      });
      li.append(label, btn);
      return li;
    }),
  );
  els.basketEmpty.hidden = view.basket.length > 0;
}

function applySession(s) {
  const wasAuthenticated = view.authenticated;
  const previousUser = view.user;
  view.user = s.user;
  view.authenticated = !!s.authenticated;
  view.name = s.name ?? null;
  view.basket = Array.isArray(s.basket) ? s.basket : [];
  renderView();
  // Devices exist only for a logged-in user: asking before would answer 401 (a console error).
  if (!view.authenticated) renderDevices(null);
  else if (!wasAuthenticated || previousUser !== view.user) void action(null, loadDevices);
}

// ---------------------------------------------------------------- Devices

/** How many `devices` pushes the socket delivered: a listing asked for before the latest push is older than it. */
let devicesPushes = 0;

async function loadDevices() {
  const pushesBefore = devicesPushes;
  const res = await api('GET', '/api/devices');
  // A push that arrived while this request was out may show a socket that opened after the
  // server listed (another device logging in at once): showing this answer would undo it.
  if (view.authenticated && devicesPushes === pushesBefore) renderDevices(res.devices);
}

/** Shows the user's devices (null hides the panel: not logged in). */
function renderDevices(devices) {
  els.devicesCard.hidden = devices === null;
  if (devices === null) {
    els.devicesList.replaceChildren();
    return;
  }
  els.devicesList.replaceChildren(
    ...devices.map((device) => {
      const li = document.createElement('li');
      li.dataset.handle = device.handle;
      li.classList.toggle('current', device.current);
      const label = document.createElement('span');
      label.className = 'item-label';
      const what = document.createElement('span');
      what.className = 'device-name';
      what.textContent = `${device.browser ?? 'Unknown browser'} on ${device.os ?? 'unknown OS'}`;
      const state = document.createElement('span');
      state.className = `badge device-state${device.online ? ' on' : ''}`;
      state.textContent = device.online ? 'online' : 'offline';
      const facts = document.createElement('span');
      facts.className = 'muted small';
      facts.textContent = `${device.current ? 'this device · ' : ''}${device.ip ?? ''} · last seen ${new Date(device.lastSeenAt).toLocaleTimeString()}`;
      label.append(what, ' ', state, ' ', facts);
      li.append(label);
      if (!device.current) {
        const btn = document.createElement('button');
        btn.type = 'button';
        btn.className = 'revoke secondary';
        btn.textContent = 'Revoke';
        btn.setAttribute('aria-label', `Log out ${what.textContent}`);
        btn.addEventListener('click', () => {
          void action(null, async () => {
            btn.disabled = true;
            const res = await api('DELETE', `/api/devices/${encodeURIComponent(device.handle)}`);
            renderDevices(res.devices);
          });
        });
        li.append(btn);
      }
      return li;
    }),
  );
}

els.revokeOthers.addEventListener('click', () => {
  void action(null, async () => {
    els.revokeOthers.disabled = true;
    try {
      const res = await api('POST', '/api/devices/revoke-others');
      renderDevices(res.devices);
    } finally {
      els.revokeOthers.disabled = false;
    }
  });
});

function applyItems(items) {
  view.basket = Array.isArray(items) ? items : [];
  renderView();
}

async function loadSession() {
  const s = await api('GET', '/api/session');
  applySession(s);
  els.nameInput.value = view.name ?? '';
  return s;
}

els.nameForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  void action(els.nameForm, async () => {
    const res = await api('PUT', '/api/name', { name: els.nameInput.value });
    view.name = res.name;
    renderView();
  });
});

els.addForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const sku = els.skuInput.value.trim();
  const qty = Number(els.qtyInput.value);
  void action(els.addForm, async () => {
    const res = await api('POST', '/api/basket/items', { sku, qty });
    applyItems(res.items);
  }).then((ok) => {
    if (ok) {
      els.skuInput.value = '';
      els.qtyInput.value = '1';
      els.skuInput.focus();
    }
  });
});

els.loginForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  void action(els.loginForm, async () => {
    const s = await api('POST', '/api/login', { username: els.usernameInput.value });
    applySession(s);
  });
});

/** True while this page logs out (its own socket's 4401 needs no reload then). */
let loggingOut = false;

els.logout.addEventListener('click', () => {
  void action(null, async () => {
    els.logout.disabled = true;
    loggingOut = true;
    try {
      await api('POST', '/api/logout');
      // The old session is gone; show the fresh anonymous one the server starts next.
      await loadSession();
    } finally {
      loggingOut = false;
      els.logout.disabled = false;
    }
  });
});

// ---------------------------------------------------------------- WebSocket (live panel)

/** Close codes after which the page reconnects by itself (transient trouble, not a decision). */
const AUTO_RECONNECT = new Set([1001, 1006, 1011, 1012, 1013, 1014]);
const LOGGED_OUT = 4401;

let socket = null;
let retries = 0;
let retryTimer = null;

function setStatus(text, state) {
  els.liveStatus.textContent = text;
  els.liveStatus.dataset.state = state;
  // Values shown while not connected are the last ones received: dim them.
  els.liveFacts.classList.toggle('stale', state !== 'connected');
}

function renderLive(msg) {
  els.liveFacts.classList.remove('stale');
  setText(els.liveUser, msg.user, '—');
  els.liveAuth.textContent = msg.authenticated ? 'logged in' : 'anonymous';
  els.liveAuth.classList.toggle('on', !!msg.authenticated);
  setText(els.liveName, msg.name, 'no name');
  els.liveBasket.textContent = basketText(msg.basket);
  els.liveUpdated.textContent = `${msg.type} at ${new Date().toLocaleTimeString()}`;
}

function connect() {
  clearTimeout(retryTimer);
  retryTimer = null;
  els.reconnect.hidden = true;
  setStatus('connecting…', 'connecting');
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
  const ws = new WebSocket(url);
  socket = ws;

  ws.addEventListener('open', () => {
    if (socket !== ws) return;
    retries = 0;
    els.liveNote.textContent = '';
    setStatus('connected', 'connected');
  });

  ws.addEventListener('message', (ev) => {
    if (socket !== ws) return;
    let msg;
    try {
      msg = JSON.parse(String(ev.data));
    } catch {
      els.liveNote.textContent = 'Received a message that is not JSON.';
      return;
    }
    if (msg.type === 'hello' || msg.type === 'session' || msg.type === 'whoami') {
      renderLive(msg);
      if (msg.type === 'session') {
        // Another tab (or this one) changed the session: keep the editable view in step.
        applySession(msg);
      }
    } else if (msg.type === 'devices') {
      devicesPushes += 1;
      if (view.authenticated) renderDevices(msg.devices);
    } else if (msg.type === 'error') {
      els.liveNote.textContent = `Server says: ${msg.message} (${msg.code})`;
    }
  });

  ws.addEventListener('close', (ev) => {
    if (socket !== ws) return;
    socket = null;
    if (ev.code === LOGGED_OUT) {
      setStatus('closed: logged out', 'closed');
      els.liveNote.textContent = 'The session was ended (logout). Reconnect to follow the new session.';
      els.reconnect.hidden = false;
      // Ended elsewhere (another tab, another device revoked this one): show the anonymous state.
      if (!loggingOut) void action(null, loadSession);
      return;
    }
    if (AUTO_RECONNECT.has(ev.code)) {
      const delay = Math.min(30000, 500 * 2 ** retries) * (0.8 + Math.random() * 0.4);
      retries += 1;
      setStatus(`disconnected (code ${ev.code})`, 'retrying');
      els.liveNote.textContent = `Reconnecting in ${Math.round(delay / 100) / 10} s…`;
      els.reconnect.hidden = false;
      retryTimer = setTimeout(connect, delay);
      return;
    }
    setStatus(`disconnected (code ${ev.code})`, 'closed');
    els.liveNote.textContent = ev.reason ? `Reason: ${ev.reason}` : '';
    els.reconnect.hidden = false;
  });
}

els.reconnect.addEventListener('click', () => {
  retries = 0;
  void action(null, async () => {
    // Start (or load) the session first so the socket's handshake carries its cookie.
    await loadSession();
  }).then(() => connect());
});

// Don't leave a socket behind while the page is kept in the back/forward cache.
window.addEventListener('pagehide', () => {
  clearTimeout(retryTimer);
  if (socket) {
    const ws = socket;
    socket = null;
    ws.close(1000, 'page hidden');
  }
});
window.addEventListener('pageshow', (ev) => {
  if (ev.persisted && !socket) void start();
});

async function start() {
  renderView();
  // The session must exist (cookie set) before the socket opens, or the socket would see a
  // connection-only anonymous view instead of this visitor's session.
  await action(null, loadSession);
  connect();
}

void start();
