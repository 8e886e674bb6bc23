// Brigade chat: plain JavaScript against Brigade's REST API and its WebSocket (/api/ws).
//
// - Accounts: /api/auth/register, /api/auth/login, /api/auth/refresh (tokens in localStorage).
// - Rooms and messages are collections; their rules decide who reads what.
// - Live messages: a `subscribe` to `collections/messages` filtered to the open room. The
//   subscription is made before the history is loaded and messages are kept by id, so
//   nothing falls between the two; after a reconnect it resumes with `since` (the id of the
//   last event seen), so nothing sent while the server restarted is lost.
// - Presence and typing: the channel `room:ROOM_ID` (join, presence, broadcast).
//
// Every value from the server is written with textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const store = window.localStorage;

const state = {
  access: store.getItem("chat.access"),
  refresh: store.getItem("chat.refresh"),
  me: null,
  rooms: [],
  room: null,
  ws: null,
  wsOpen: false,
  backoff: 500,
  lastEventId: null,
  names: new Map(),
  shown: new Set(),
  members: new Map(),
  typing: new Map(),
  lastTypingSent: 0,
};

// ---- HTTP ------------------------------------------------------------------------------

async function api(path, options = {}, retry = true) {
  const headers = { ...(options.headers || {}) };
  if (options.body !== undefined) headers["content-type"] = "application/json";
  if (state.access) headers.authorization = `Bearer ${state.access}`;
  const res = await fetch(path, {
    ...options,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  if (res.status === 401 && retry && state.refresh && (await refreshTokens())) {
    return api(path, options, false);
  }
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) {
    const detail = (data && data.detail) || `${res.status} ${res.statusText}`;
    throw new Error(detail);
  }
  return data;
}

function saveTokens(login) {
  state.access = login.access_token;
  state.refresh = login.refresh_token;
  store.setItem("chat.access", state.access);
  store.setItem("chat.refresh", state.refresh);
}

async function refreshTokens() {
  try {
    const res = await fetch("/api/auth/refresh", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: state.refresh }),
    });
    if (!res.ok) throw new Error("refresh refused");
    saveTokens(await res.json());
    return true;
  } catch {
    signOut();
    return false;
  }
}

// ---- Sign in -----------------------------------------------------------------------------

async function logIn(email, password) {
  const login = await api("/api/auth/login", { method: "POST", body: { email, password } }, false);
  saveTokens(login);
  await start();
}

function signOut() {
  state.access = state.refresh = null;
  store.removeItem("chat.access");
  store.removeItem("chat.refresh");
  if (state.ws) {
    state.ws.onclose = null;
    state.ws.close();
  }
  state.ws = null;
  $("app").hidden = true;
  $("signin").hidden = false;
}

$("auth-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("auth-error").textContent = "";
  try {
    await logIn($("email").value, $("password").value);
  } catch (err) {
    $("auth-error").textContent = err.message;
  }
});

$("register").addEventListener("click", async () => {
  $("auth-error").textContent = "";
  const email = $("email").value;
  const password = $("password").value;
  const name = $("name").value.trim() || email.split("@")[0];
  try {
    await api("/api/auth/register", { method: "POST", body: { email, password, name } }, false);
    await logIn(email, password);
  } catch (err) {
    $("auth-error").textContent = err.message;
  }
});

$("logout").addEventListener("click", async () => {
  try {
    await api("/api/auth/logout", { method: "POST", body: { refresh_token: state.refresh } });
  } catch {
    // Signed out locally whatever the server says.
  }
  signOut();
});

// ---- Rooms -------------------------------------------------------------------------------

async function loadRooms() {
  const page = await api("/api/collections/rooms/records?sort=name&per_page=200");
  state.rooms = page.items;
  const list = $("rooms");
  list.replaceChildren();
  for (const room of state.rooms) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.textContent = (room.private ? "🔒 " : "# ") + room.name;
    button.dataset.room = room.id;
    button.setAttribute("aria-current", String(state.room && state.room.id === room.id));
    button.addEventListener("click", () => openRoom(room));
    item.append(button);
    list.append(item);
  }
}

$("new-room").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("room-error").textContent = "";
  try {
    const room = await api("/api/collections/rooms/records", {
      method: "POST",
      body: {
        name: $("room-name").value.trim(),
        private: $("room-private").checked,
        owner: state.me.id,
        members: [],
      },
    });
    $("room-name").value = "";
    await loadRooms();
    await openRoom(room);
  } catch (err) {
    $("room-error").textContent = err.message;
  }
});

$("invite").addEventListener("submit", async (e) => {
  e.preventDefault();
  const id = $("invite-id").value.trim();
  if (!id || !state.room) return;
  const members = Array.from(new Set([...(state.room.members || []), id]));
  try {
    state.room = await api(`/api/collections/rooms/records/${state.room.id}`, {
      method: "PATCH",
      body: { members },
    });
    $("invite-id").value = "";
  } catch (err) {
    $("send-error").textContent = err.message;
  }
});

async function openRoom(room) {
  if (state.room && state.room.id !== room.id) leaveLive(state.room);
  state.room = room;
  state.shown.clear();
  state.members.clear();
  state.typing.clear();
  state.lastEventId = null;
  $("messages").replaceChildren();
  renderPresence();
  renderTyping();
  $("room-title").textContent = (room.private ? "🔒 " : "# ") + room.name;
  $("invite").hidden = !(room.private && room.owner === state.me.id);
  $("text").disabled = false;
  $("composer").querySelector("button").disabled = false;
  for (const b of $("rooms").querySelectorAll("button")) {
    b.setAttribute("aria-current", String(b.dataset.room === room.id));
  }
  // Live first, then the history: messages are kept by id, so the overlap shows once.
  enterLive(room);
  await loadHistory(room);
  $("text").focus();
}

async function loadHistory(room) {
  const filter = encodeURIComponent(`room = '${room.id}'`);
  const page = await api(
    `/api/collections/messages/records?filter=${filter}&sort=-created&per_page=50&expand=author`,
  );
  if (!state.room || state.room.id !== room.id) return;
  for (const message of page.items.reverse()) {
    const author = message.expand && message.expand.author;
    if (author && author.profile && author.profile.name) state.names.set(author.id, author.profile.name);
    showMessage(message, true);
  }
  scrollDown();
}

function showMessage(message, historical = false) {
  if (state.shown.has(message.id)) return;
  state.shown.add(message.id);
  const item = document.createElement("li");
  item.dataset.id = message.id;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = state.names.get(message.author) || "someone";
  who.dataset.author = message.author;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = message.text;
  const when = document.createElement("time");
  when.dateTime = message.created;
  when.textContent = new Date(message.created).toLocaleTimeString();
  item.append(who, text, when);
  // Keep the list in creation order even when a live message beats the history.
  const list = $("messages");
  const later = Array.from(list.children).find((li) => li.querySelector("time").dateTime > message.created);
  list.insertBefore(item, later || null);
  if (!state.names.has(message.author)) resolveName(message);
  if (!historical) scrollDown();
}

async function resolveName(message) {
  try {
    const full = await api(`/api/collections/messages/records/${message.id}?expand=author`);
    const profile = full.expand && full.expand.author && full.expand.author.profile;
    if (profile && profile.name) {
      state.names.set(message.author, profile.name);
      for (const el of document.querySelectorAll(`.who[data-author="${CSS.escape(message.author)}"]`)) {
        el.textContent = profile.name;
      }
    }
  } catch {
    // The name stays "someone".
  }
}

function scrollDown() {
  const list = $("messages");
  list.scrollTop = list.scrollHeight;
}

$("composer").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = $("text");
  const text = input.value.trim();
  if (!text || !state.room) return;
  $("send-error").textContent = "";
  try {
    const message = await api("/api/collections/messages/records", {
      method: "POST",
      body: { room: state.room.id, author: state.me.id, text },
    });
    input.value = "";
    showMessage(message);
  } catch (err) {
    $("send-error").textContent = err.message;
  }
});

$("text").addEventListener("input", () => {
  const now = Date.now();
  if (!state.room || !state.wsOpen || now - state.lastTypingSent < 1500) return;
  state.lastTypingSent = now;
  send({ type: "broadcast", channel: `room:${state.room.id}`, payload: { typing: true } });
});

// ---- Presence and typing -----------------------------------------------------------------

function renderPresence() {
  const box = $("presence");
  box.replaceChildren();
  const seen = new Set();
  for (const member of state.members.values()) {
    const key = member.id || member.key;
    if (seen.has(key)) continue;
    seen.add(key);
    const chip = document.createElement("span");
    chip.className = "member";
    chip.textContent = (member.meta && member.meta.name) || "guest";
    box.append(chip);
  }
}

function renderTyping() {
  const names = Array.from(state.typing.keys());
  $("typing").textContent = names.length ? `${names.join(", ")} ${names.length > 1 ? "are" : "is"} typing…` : "";
}

function someoneTyping(name) {
  clearTimeout(state.typing.get(name));
  state.typing.set(
    name,
    setTimeout(() => {
      state.typing.delete(name);
      renderTyping();
    }, 3000),
  );
  renderTyping();
}

// ---- The WebSocket -----------------------------------------------------------------------

function send(message) {
  if (state.ws && state.wsOpen) state.ws.send(JSON.stringify(message));
}

function setStatus(text, live) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("live", live);
}

function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/api/ws?token=${encodeURIComponent(state.access)}`);
  state.ws = ws;
  ws.onopen = () => {
    state.wsOpen = true;
    state.backoff = 500;
    setStatus("live", true);
    if (state.room) enterLive(state.room);
  };
  ws.onmessage = (e) => onMessage(JSON.parse(e.data));
  ws.onclose = async (e) => {
    state.wsOpen = false;
    if (state.ws !== ws) return;
    setStatus("reconnecting…", false);
    if (e.code === 1008 && !(await refreshTokens())) return;
    const wait = state.backoff;
    state.backoff = Math.min(state.backoff * 2, 5000);
    setTimeout(() => {
      if (state.ws === ws && state.access) connect();
    }, wait);
  };
}

function enterLive(room) {
  if (!state.wsOpen) return;
  const subscribe = { type: "subscribe", topic: "collections/messages", filter: `room = '${room.id}'` };
  if (state.lastEventId !== null) subscribe.since = state.lastEventId;
  send(subscribe);
  state.members.clear();
  send({ type: "join", channel: `room:${room.id}`, meta: { name: state.me.name } });
}

function leaveLive(room) {
  send({ type: "unsubscribe", topic: "collections/messages" });
  send({ type: "leave", channel: `room:${room.id}` });
}

function onMessage(m) {
  switch (m.type) {
    case "subscribed":
      if (state.lastEventId === null || m.position > state.lastEventId) state.lastEventId = m.position;
      break;
    case "event":
      state.lastEventId = m.id;
      if (m.action === "create" && state.room && m.record.room === state.room.id) showMessage(m.record);
      if (m.action === "delete") {
        const gone = document.querySelector(`#messages li[data-id="${CSS.escape(m.record.id)}"]`);
        if (gone) gone.remove();
      }
      break;
    case "resync":
      if (state.room) loadHistory(state.room);
      break;
    case "joined":
      state.members.clear();
      for (const member of m.members) state.members.set(member.key, member);
      renderPresence();
      break;
    case "presence":
      for (const member of m.joins) state.members.set(member.key, member);
      for (const member of m.leaves) state.members.delete(member.key);
      for (const member of m.joins) if (member.id && member.meta && member.meta.name) state.names.set(member.id, member.meta.name);
      renderPresence();
      break;
    case "broadcast":
      if (m.payload && m.payload.typing && m.from && m.from.id !== state.me.id) {
        const member = Array.from(state.members.values()).find((x) => x.key === m.from.key);
        someoneTyping((member && member.meta && member.meta.name) || state.names.get(m.from.id) || "someone");
      }
      break;
    case "error":
      console.warn("chat:", m.detail);
      break;
    default:
      break;
  }
}

// ---- Start -------------------------------------------------------------------------------

async function start() {
  const me = await api("/api/auth/me");
  state.me = { id: me.id, email: me.email, name: (me.profile && me.profile.name) || me.email.split("@")[0] };
  state.names.set(state.me.id, state.me.name);
  $("me").textContent = state.me.name;
  $("my-id").textContent = state.me.id;
  $("signin").hidden = true;
  $("app").hidden = false;
  connect();
  await loadRooms();
  const lobby = state.rooms.find((r) => r.name === "lobby") || state.rooms[0];
  if (lobby) await openRoom(lobby);
}

if (state.access) {
  start().catch(() => signOut());
} else {
  $("signin").hidden = false;
}
