// The lineproto page: a thin view over the gateway's HTTP API (docs/WEB.md). It keeps no game state of
// its own: every number it shows (bankroll, bets, results) comes from the daemon's replies.
"use strict";

const RED = new Set([1, 3, 5, 7, 9, 12, 14, 16, 18, 19, 21, 23, 25, 27, 30, 32, 34, 36]);
const EVENT_CODES = ["610", "620", "630", "640", "641", "650"];

/** A refusal from the gateway: the HTTP status and the daemon's reply code and text. */
class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.text || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || 0;
  }
}

/** The page's session: the CSRF token the gateway gave at login, the user and roles. */
const session = { csrf: "", user: "", roles: [] };

/** One call to the gateway; state-changing calls carry the session's CSRF token. */
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = session.csrf;
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    if (response.status === 401 && path !== "/login" && path !== "/session") showLogin("Your session ended: log in again.");
    throw new ApiError(response.status, data);
  }
  return data;
}

const $ = (id) => document.getElementById(id);

function element(tag, attributes = {}, text = "") {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text) node.textContent = text;
  return node;
}

/** Show a message (a refusal in red) in the element next to the control the user used. */
function say(id, text, refused = false) {
  const node = $(id);
  node.textContent = text;
  node.classList.toggle("refused", refused);
}

/** Run an action for a control: its refusal text goes to the message element of that control. */
async function act(messageId, action) {
  say(messageId, "");
  try {
    await action();
  } catch (error) {
    say(messageId, error.message, true);
  }
}

/** A refresh the user did not ask for (after login, an event): only a failure is shown, nothing is cleared. */
async function refresh(messageId, action) {
  try {
    await action();
  } catch (error) {
    say(messageId, error.message, true);
  }
}

function signed(n) {
  return n > 0 ? `+${n}` : `${n}`;
}

function colourOf(number) {
  if (number === "0" || number === "00") return "green";
  return RED.has(Number(number)) ? "red" : "black";
}

// ---------------------------------------------------------------------------------------------
// Login and tabs
// ---------------------------------------------------------------------------------------------

function showLogin(message = "") {
  closeEvents();
  $("app").hidden = true;
  $("logout").hidden = true;
  $("whoami").hidden = true;
  $("login-panel").hidden = false;
  say("login-message", message, Boolean(message));
  $("login-user").focus();
}

function startSession(data) {
  session.csrf = data.csrf;
  session.user = data.user;
  session.roles = data.roles || [];
  $("login-panel").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  $("whoami").hidden = false;
  $("whoami").textContent = `${data.user} (${session.roles.join(", ") || "no roles"})`;
  let first = null;
  for (const tab of document.querySelectorAll("[role=tab]")) {
    const needs = tab.dataset.roles ? tab.dataset.roles.split(" ") : [];
    tab.hidden = needs.length > 0 && !needs.some((role) => session.roles.includes(role));
    if (!tab.hidden && !first) first = tab;
  }
  resetViews();
  selectTab(first);
  if (isPlayer()) {
    openEvents();
    refresh("bet-message", () => Promise.all([refreshTables(), refreshTable(), refreshHistory()]));
  }
}

/** What an earlier login on this page showed goes: the next user's views start empty. */
function resetViews() {
  seatedAt("");
  stake.last = [];
  $("rebet").disabled = true;
  for (const id of ["feed", "open-bets", "history", "tables", "meter-status"]) $(id).replaceChildren();
  $("result").replaceChildren(element("p", { class: "hint" }, "No spin yet."));
  for (const id of ["job-text", "bet-message", "tables-message", "chat-message", "reading-message"]) say(id, "");
}

function isPlayer() {
  return session.roles.includes("player");
}

function selectTab(tab) {
  for (const other of document.querySelectorAll("[role=tab]")) {
    const chosen = other === tab;
    other.setAttribute("aria-selected", String(chosen));
    other.tabIndex = chosen ? 0 : -1;
    $(other.getAttribute("aria-controls")).hidden = !chosen;
  }
  if (tab.id === "tab-meter") refresh("reading-message", refreshMeterStatus);
  if (tab.id === "tab-shared") refresh("tables-message", refreshTables);
}

function setUpTabs() {
  const tabs = () => [...document.querySelectorAll("[role=tab]")].filter((tab) => !tab.hidden);
  for (const tab of document.querySelectorAll("[role=tab]")) {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (event) => {
      const list = tabs();
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = list[(list.indexOf(tab) + step + list.length) % list.length];
      selectTab(next);
      next.focus();
      event.preventDefault();
    });
  }
}

function setUpLogin() {
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    act("login-message", async () => {
      const data = await api("POST", "/login", { user: $("login-user").value.trim(), password: $("login-password").value });
      $("login-password").value = "";
      startSession(data);
    });
  });
  $("logout").addEventListener("click", async () => {
    try {
      await api("POST", "/logout");
    } catch {
      // logged out either way
    }
    disconnectTerminal();
    showLogin();
  });
}

// ---------------------------------------------------------------------------------------------
// The roulette layout
// ---------------------------------------------------------------------------------------------

/** The chosen stake per click, and the bets of the last spin (for "Bet again"). */
const stake = { amount: 5, last: [] };

function betButton(bet, label, classes, title = "") {
  const button = element("button", { type: "button", class: `bet ${classes}`, "data-bet": bet });
  button.setAttribute("aria-label", `Bet ${bet}`);
  button.title = title || bet;
  if (label) button.append(element("span", { class: "label" }, label));
  return button;
}

/** Grid placement of the numbers 1-36 (three columns, twelve rows) and the splits and corners between. */
function place(node, column, row) {
  node.style.gridColumn = String(column);
  node.style.gridRow = String(row);
  return node;
}

function buildLayout(wheel) {
  const layout = $("layout");
  layout.replaceChildren();
  layout.dataset.wheel = wheel;

  const zeros = element("div", { class: "zeros" });
  if (wheel === "american") {
    zeros.append(betButton("0", "0", "number green"), betButton("SPLIT 0-00", "", "split-v", "SPLIT 0-00"), betButton("00", "00", "number green"));
  } else {
    zeros.append(betButton("0", "0", "number green"));
  }
  layout.append(zeros);

  const grid = element("div", { class: "grid" });
  for (let n = 1; n <= 36; n++) {
    const row = Math.floor((n - 1) / 3);
    const column = (n - 1) % 3;
    const gridRow = 2 * row + 1;
    const gridColumn = 2 * column + 2;
    grid.append(place(betButton(String(n), String(n), `number ${colourOf(String(n))}`), gridColumn, gridRow));
    if (column < 2) grid.append(place(betButton(`SPLIT ${n}-${n + 1}`, "", "split-v"), gridColumn + 1, gridRow));
    if (row < 11) {
      grid.append(place(betButton(`SPLIT ${n}-${n + 3}`, "", "split-h"), gridColumn, gridRow + 1));
      if (column < 2) grid.append(place(betButton(`CORNER ${n}-${n + 1}-${n + 3}-${n + 4}`, "", "corner"), gridColumn + 1, gridRow + 1));
    }
    if (column === 0) {
      grid.append(place(betButton(`STREET ${n}`, "", "street", `STREET ${n} (${n}-${n + 2})`), 1, gridRow));
      if (row < 11) grid.append(place(betButton(`LINE ${n}`, "", "sixline", `LINE ${n} (${n}-${n + 5})`), 1, gridRow + 1));
    }
  }
  for (let c = 1; c <= 3; c++) grid.append(place(betButton(`COLUMN${c}`, "2:1", "outside column-bet", `COLUMN${c}`), 2 * c, 24));
  layout.append(grid);

  const zeroBets = element("div", { class: "row zero-bets" });
  const names = wheel === "american"
    ? ["SPLIT 0-1", "SPLIT 0-2", "SPLIT 00-2", "SPLIT 00-3", "TRIO 0-1-2", "TRIO 0-00-2", "TRIO 00-2-3", "BASKET"]
    : ["SPLIT 0-1", "SPLIT 0-2", "SPLIT 0-3", "TRIO 0-1-2", "TRIO 0-2-3", "FOUR"];
  for (const name of names) zeroBets.append(betButton(name, name.replace("SPLIT ", "").replace("TRIO ", ""), "outside small"));
  layout.append(zeroBets);

  const dozens = element("div", { class: "row" });
  dozens.append(betButton("DOZEN1", "1st 12", "outside"), betButton("DOZEN2", "2nd 12", "outside"), betButton("DOZEN3", "3rd 12", "outside"));
  layout.append(dozens);

  const evens = element("div", { class: "row evens" });
  evens.append(
    betButton("LOW", "1-18", "outside"),
    betButton("EVEN", "Even", "outside"),
    betButton("RED", "Red", "outside red"),
    betButton("BLACK", "Black", "outside black"),
    betButton("ODD", "Odd", "outside"),
    betButton("HIGH", "19-36", "outside"),
  );
  layout.append(evens);
}

/** The arrow keys move the focus across the layout to the nearest bet in that direction (Tab still walks it). */
function moveInLayout(event) {
  const step = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[event.key];
  const from = event.target.closest("button[data-bet]");
  if (!step || !from) return;
  const centre = (node) => {
    const box = node.getBoundingClientRect();
    return [box.left + box.width / 2, box.top + box.height / 2];
  };
  const [x, y] = centre(from);
  let best = null;
  let bestScore = Infinity;
  for (const button of $("layout").querySelectorAll("button[data-bet]")) {
    const [bx, by] = centre(button);
    const along = (bx - x) * step[0] + (by - y) * step[1];
    if (button === from || along <= 1) continue;
    const across = Math.abs((bx - x) * step[1]) + Math.abs((by - y) * step[0]);
    const score = along + 3 * across;
    if (score < bestScore) [best, bestScore] = [button, score];
  }
  if (best) {
    best.focus();
    event.preventDefault();
  }
}

function setUpLayout() {
  buildLayout("american");
  $("layout").addEventListener("keydown", moveInLayout);
  $("layout").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-bet]");
    if (button) act("bet-message", () => placeBet(button.dataset.bet));
  });
  for (const chip of document.querySelectorAll(".chip")) {
    chip.addEventListener("click", () => {
      stake.amount = Number(chip.dataset.chip);
      for (const other of document.querySelectorAll(".chip")) other.setAttribute("aria-pressed", String(other === chip));
    });
  }
  $("bet-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("bet-text").value.trim();
    if (text) act("bet-message", async () => {
      await placeBet(text);
      $("bet-text").value = "";
    });
  });
  $("spin").addEventListener("click", () => act("bet-message", spin));
  $("clear").addEventListener("click", () => act("bet-message", clearBets));
  $("rebet").addEventListener("click", () => act("bet-message", betAgain));
  $("history-refresh").addEventListener("click", () => act("bet-message", refreshHistory));
}

async function placeBet(bet) {
  const data = await api("POST", "/bet", { bet, amount: stake.amount });
  const placed = data.placed.map((p) => `${p.bet} for ${p.amount} (pays ${p.pays}:1), slip ${p.slip}`).join("; ");
  say("bet-message", `Placed ${placed}.`);
  await refreshTable();
}

/** The last spin's bets again, as one list: the daemon places all of them or none (POST /bet with a list). */
async function betAgain() {
  const data = await api("POST", "/bet", stake.last);
  say("bet-message", `Placed again: ${data.placed.map((p) => `${p.bet} for ${p.amount}`).join(", ")}; bankroll ${data.bankroll}.`);
  await refreshTable();
}

async function clearBets() {
  const data = await api("DELETE", "/bet");
  say("bet-message", `Cleared ${data.cleared} bets, ${data.returned} chips back; bankroll ${data.bankroll}.`);
  await refreshTable();
}

async function spin() {
  const data = await api("POST", "/wheel");
  stake.last = (data.bets || []).map((bet) => ({ bet: bet.bet, amount: bet.amount }));
  $("rebet").disabled = stake.last.length === 0;
  showSpin(data);
  $("bankroll").textContent = data.bankroll;
  $("rounds").textContent = data.rounds;
  await Promise.all([refreshTable(), refreshHistory()]);
}

/** The pocket as a coloured badge plus its properties. */
function pocketBadge(pocket) {
  const number = String(pocket.number);
  const badge = element("span", { class: `pocket ${pocket.color || colourOf(number)}` }, number);
  const words = [pocket.color || colourOf(number)];
  if (pocket.even !== null && pocket.even !== undefined) words.push(pocket.even ? "even" : "odd");
  if (pocket.high !== null && pocket.high !== undefined) words.push(pocket.high ? "high" : "low");
  if (pocket.dozen) words.push(`dozen ${pocket.dozen}`);
  if (pocket.column) words.push(`column ${pocket.column}`);
  const wrap = element("p", { class: "pocket-line" });
  wrap.append(badge, element("span", {}, words.join(", ")));
  return wrap;
}

function showSpin(data) {
  const result = $("result");
  result.replaceChildren(pocketBadge(data.pocket));
  const bets = element("ul", { class: "list" });
  for (const bet of data.bets || []) {
    bets.append(element("li", { class: bet.outcome }, `${bet.bet} for ${bet.amount}: ${bet.outcome}, ${bet.returned} returned`));
  }
  if (bets.children.length) result.append(bets);
  const net = element("p", { class: "net", id: "result-net", "data-net": String(data.net) });
  net.textContent = `Net ${signed(data.net)}; bankroll ${data.bankroll}; rounds ${data.rounds}`;
  result.append(net);
}

/** The bankroll, open bets and the stakes on the layout, from GET /player and GET /bet. */
async function refreshTable() {
  const [player, bets] = await Promise.all([api("GET", "/player"), api("GET", "/bet")]);
  $("bankroll").textContent = player.bankroll;
  $("rounds").textContent = player.rounds;
  $("staked").textContent = bets.staked;
  const wheel = live.table ? live.wheel : player.wheel;
  if (wheel && $("layout").dataset.wheel !== wheel) buildLayout(wheel);
  $("wheel").textContent = wheel;
  const list = $("open-bets");
  list.replaceChildren();
  const stakes = new Map();
  for (const bet of bets.bets) {
    list.append(element("li", {}, `${bet.bet} for ${bet.amount} (pays ${bet.pays}:1)`));
    stakes.set(bet.bet, (stakes.get(bet.bet) || 0) + bet.amount);
  }
  if (!bets.bets.length) list.append(element("li", { class: "hint" }, "No open bets."));
  for (const button of $("layout").querySelectorAll("button[data-bet]")) {
    const amount = stakes.get(button.dataset.bet);
    let marker = button.querySelector(".stake");
    if (amount) {
      if (!marker) marker = button.appendChild(element("span", { class: "stake", "aria-hidden": "true" }));
      marker.textContent = amount;
      button.setAttribute("aria-label", `Bet ${button.dataset.bet}, ${amount} staked`);
    } else if (marker) {
      marker.remove();
      button.setAttribute("aria-label", `Bet ${button.dataset.bet}`);
    }
  }
}

/** One HIST entry as a line of text: a round or a cashier's credit. */
function historyText(entry) {
  if (typeof entry === "string") return entry;
  if (entry.kind === "round") {
    const pocket = `${entry.pocket.number} ${entry.pocket.color}`;
    return `Round ${entry.round} at ${entry.table}: ${pocket}; bankroll ${entry.before} -> ${entry.after}; net ${signed(entry.net)}`;
  }
  if (entry.kind === "credit") {
    return `Credit ${entry.number} by ${entry.by}: ${signed(entry.amount)} chips; bankroll ${entry.before} -> ${entry.after}; ${entry.reason}`;
  }
  return JSON.stringify(entry);
}

async function refreshHistory() {
  const data = await api("GET", "/history?count=10");
  const list = $("history");
  list.replaceChildren();
  for (const entry of data.entries) {
    const item = element("li", {}, historyText(entry));
    for (const bet of entry.bets || []) {
      item.append(element("div", { class: "hint" }, `slip ${bet.slip}: ${bet.bet} for ${bet.amount}: ${bet.outcome}, ${bet.returned} returned`));
    }
    list.append(item);
  }
  if (!data.entries.length) list.append(element("li", { class: "hint" }, "No rounds yet."));
}

// ---------------------------------------------------------------------------------------------
// Shared tables and the live events
// ---------------------------------------------------------------------------------------------

const live = { source: null, table: "", wheel: "" };

function openEvents() {
  closeEvents();
  live.source = new EventSource("/events");
  // The stream is open (events from now on reach the page): shown for people and tests alike.
  const shown = (state) => {
    $("app").dataset.events = state;
    $("events-state").textContent = `(events ${state})`;
  };
  live.source.addEventListener("open", () => shown("live"));
  live.source.addEventListener("error", () => shown("reconnecting"));
  for (const code of EVENT_CODES) live.source.addEventListener(code, (event) => onEvent(JSON.parse(event.data)));
}

function closeEvents() {
  if (live.source) live.source.close();
  live.source = null;
  delete $("app").dataset.events;
}

function feed(text, kind) {
  const item = element("li", { class: kind }, text);
  const list = $("feed");
  list.append(item);
  while (list.children.length > 200) list.firstChild.remove();
  list.scrollTop = list.scrollHeight; // the feed scrolls to its newest line; the page stays where it is
}

/** A 6yz event from the daemon: into the table's feed; a settled round (630) also updates the roulette tab. */
function onEvent(event) {
  const code = String(event.code);
  feed(`${code} ${event.text}`, `event e${code}`);
  if (code === "630" && event.pocket) {
    const own = event.net === undefined ? "no bets of yours" : `net ${signed(event.net)} (staked ${event.staked}, returned ${event.returned})`;
    const net = element("p", { class: "net" }, `Round ${event.round} at ${live.table}: ${own}`);
    $("result").replaceChildren(pocketBadge(event.pocket), net);
    refresh("bet-message", () => Promise.all([refreshTable(), refreshHistory()]));
  }
}

function seatedAt(name, wheel = "") {
  live.table = name;
  live.wheel = wheel;
  $("seated").textContent = name ? `${name}` : "(not seated)";
  $("leave").hidden = !name;
  $("spin").disabled = Boolean(name);
  $("rebet").disabled = Boolean(name) || stake.last.length === 0;
  $("where").textContent = name ? `At the shared table ${name}, the croupier spins` : "At your own table";
}

async function refreshTables() {
  const data = await api("GET", "/tables");
  const list = $("tables");
  list.replaceChildren();
  const at = data.tables.find((table) => table.name === data.at);
  if ((data.at || "") !== live.table) seatedAt(data.at || "", at ? at.wheel : "");
  for (const table of data.tables) {
    const item = element("li", { class: "table-row" });
    const name = table.name;
    const left = table.seconds_left === null ? "" : `, ${table.seconds_left} s left`;
    const summary = `${name}: ${table.wheel} wheel, bets ${table.minimum}-${table.maximum} chips, ${table.seated} seated, round ${table.round}, ${table.state}${left}`;
    item.append(element("span", {}, summary));
    const join = element("button", { type: "button", "data-table": name }, name === live.table ? `Seated at ${name}` : `Join ${name}`);
    join.disabled = name === live.table;
    join.addEventListener("click", () => act("tables-message", () => joinTable(name, table.wheel)));
    item.append(join);
    list.append(item);
  }
}

async function joinTable(name, wheel) {
  const data = await api("POST", `/tables/${encodeURIComponent(name)}/join`);
  seatedAt(name, wheel);
  say("tables-message", data.text || `Joined ${name}.`);
  feed(data.text || `Joined ${name}`, "own");
  await Promise.all([refreshTables(), refreshTable()]);
}

async function leaveTable() {
  const data = await api("POST", "/tables/leave");
  seatedAt("");
  say("tables-message", data.text || "Left the table.");
  await Promise.all([refreshTables(), refreshTable()]);
}

function setUpShared() {
  $("tables-refresh").addEventListener("click", () => act("tables-message", refreshTables));
  $("leave").addEventListener("click", () => act("tables-message", leaveTable));
  $("chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("chat-text").value;
    if (!text.trim()) return;
    act("chat-message", async () => {
      const data = await api("POST", "/tables/chat", { text });
      feed(`${session.user}: ${text}`, "own");
      say("chat-message", data.text || "");
      $("chat-text").value = "";
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Meter reading
// ---------------------------------------------------------------------------------------------

async function takeJob() {
  const data = await api("POST", "/meter/job");
  const meter = data.meter || "";
  $("job-text").textContent = data.done ? data.text || "All jobs done" : `${meter} is yours to read`;
  if (meter) {
    $("reading-meter").value = meter;
    $("reading-value").focus();
  }
}

async function submitReading() {
  const meter = $("reading-meter").value.trim();
  const byReason = document.querySelector("input[name=kind]:checked").value === "reason";
  const body = byReason ? { meter, reason: $("reading-reason").value } : { meter, reading: $("reading-value").value.trim() };
  const data = await api("POST", "/meter/reading", body);
  say("reading-message", `Accepted: you have read ${data.mine} out of ${data.total} readings`);
  $("reading-value").value = "";
  $("reading-reason").value = "";
  await refreshMeterStatus();
}

async function refreshMeterStatus() {
  const data = await api("GET", "/meter/status");
  const list = $("meter-status");
  list.replaceChildren();
  const rows = [
    ["user", "Reader", data.user],
    ["my_readings", "Meters whose reading is yours", data.my_readings],
    ["all_readings", "Meters read, by anyone", data.all_readings],
  ];
  for (const [key, label, value] of rows) list.append(element("dt", {}, label), element("dd", { "data-key": key }, String(value)));
}

function setUpMeter() {
  $("job").addEventListener("click", () => act("reading-message", takeJob));
  $("reading-form").addEventListener("submit", (event) => {
    event.preventDefault();
    act("reading-message", submitReading);
  });
  for (const radio of document.querySelectorAll("input[name=kind]")) {
    radio.addEventListener("change", () => {
      const byReason = radio.value === "reason" && radio.checked;
      $("reading-reason-label").hidden = !byReason;
      $("reading-value-label").hidden = byReason;
    });
  }
  $("meter-status-refresh").addEventListener("click", () => act("reading-message", refreshMeterStatus));
}

// ---------------------------------------------------------------------------------------------
// The terminal: the raw line protocol over /ws, one text frame per line
// ---------------------------------------------------------------------------------------------

const terminal = { socket: null };

function termWrite(text, kind = "") {
  const output = $("term-output");
  const line = element("span", { class: kind }, text.endsWith("\n") ? text : `${text}\n`);
  output.append(line);
  while (output.childNodes.length > 2000) output.firstChild.remove();
  output.scrollTop = output.scrollHeight;
}

function termEnabled(connected) {
  $("term-connect").disabled = connected;
  $("term-disconnect").disabled = !connected;
  $("term-input").disabled = !connected;
  $("term-send").disabled = !connected;
}

function connectTerminal() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}/ws`);
  terminal.socket = socket;
  termWrite("connecting...", "note");
  socket.addEventListener("open", () => {
    termEnabled(true);
    $("term-input").focus();
  });
  socket.addEventListener("message", (event) => termWrite(String(event.data), "in"));
  socket.addEventListener("close", (event) => {
    termWrite(`connection closed${event.reason ? `: ${event.reason}` : ""} (${event.code})`, "note");
    if (terminal.socket === socket) terminal.socket = null;
    termEnabled(false);
  });
}

function disconnectTerminal() {
  if (terminal.socket) terminal.socket.close(1000);
}

function setUpTerminal() {
  $("term-connect").addEventListener("click", connectTerminal);
  $("term-disconnect").addEventListener("click", disconnectTerminal);
  $("term-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const line = $("term-input").value;
    if (!terminal.socket || terminal.socket.readyState !== WebSocket.OPEN) return;
    terminal.socket.send(line);
    // A password is not echoed.
    termWrite(/^pass\s/i.test(line) ? "PASS ********" : line, "out");
    $("term-input").value = "";
  });
}

// ---------------------------------------------------------------------------------------------

async function start() {
  setUpLogin();
  setUpTabs();
  setUpLayout();
  setUpShared();
  setUpMeter();
  setUpTerminal();
  try {
    startSession(await api("GET", "/session"));
  } catch {
    showLogin();
  }
}

document.addEventListener("DOMContentLoaded", start);
