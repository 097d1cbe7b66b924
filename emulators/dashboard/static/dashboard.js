// The benchtwin dashboard: plain JavaScript, no framework, nothing fetched from outside this server.
"use strict";

const STREAM_ACTIONS = ["drop", "corrupt", "stall", "close", "disconnect"];
const HTTP_ACTIONS = ["status", "delay", "empty", "reset"];
const PREVIEW_PERIOD_MS = 500;   // two preview frames a second
const STATE_PERIOD_MS = 2000;
const MAX_EVENTS = 300;

const $ = (root, selector) => root.querySelector(selector);

async function call(path, options = {}) {
  const init = { ...options, headers: { ...(options.headers || {}) } };
  if (init.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(init.body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = text; }
  if (!response.ok) {
    const message = body && body.error ? body.error : `HTTP ${response.status}`;
    const error = new Error(message);
    error.needsToken = response.status === 401 && body && body.field === "token";
    throw error;
  }
  return body;
}

// A dashboard started with a control token asks for it once; the server answers with a session cookie.
function askForToken(message) {
  const status = document.getElementById("status");
  status.textContent = "";
  const form = document.createElement("form");
  form.id = "token-form";
  const label = document.createElement("label");
  label.htmlFor = "token";
  label.textContent = message;
  const input = document.createElement("input");
  input.id = "token";
  input.type = "password";
  input.autocomplete = "off";
  input.required = true;
  const button = document.createElement("button");
  button.type = "submit";
  button.textContent = "Open";
  form.append(label, input, button);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await call("/api/session", { method: "POST", body: { token: input.value } });
      form.remove();
      main().catch(failed);
    } catch (error) {
      label.textContent = error.message;
    }
  });
  status.appendChild(form);
  input.focus();
}

function failed(error) {
  if (error.needsToken) {
    askForToken("This dashboard is guarded by the control token. Token:");
    return;
  }
  document.getElementById("status").textContent = `Cannot load: ${error.message}`;
}

function say(output, message, ok) {
  output.textContent = message;
  output.className = ok ? "ok" : "bad";
}

function copyButton(text, label) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = "Copy";
  button.setAttribute("aria-label", `Copy ${label}`);
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch {
      button.textContent = "Select and copy";
    }
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  });
  return button;
}

class EmulatorView {
  constructor(name, entry) {
    this.name = name;
    this.entry = entry;
    this.api = `/api/${encodeURIComponent(name)}/_emulator`;
    this.section = document.getElementById("emulator-template").content.firstElementChild.cloneNode(true);
    this.section.id = `emulator-${name}`;
    this.section.setAttribute("aria-labelledby", `title-${name}`);
    const title = $(this.section, "h2");
    title.id = `title-${name}`;
    title.textContent = entry.device && entry.device !== name ? `${name} (${entry.device})` : name;
    this.previewFigures = new Map();
    this.audioRows = new Map();
    this.streams = [];
    this.renderEndpoints();
    this.setUpFaultForm();
    $(this.section, ".reset").addEventListener("click", () => this.reset());
  }

  renderEndpoints() {
    const list = $(this.section, ".endpoints");
    const rows = Object.entries(this.entry).filter(([key]) => key !== "credentials" && key !== "device");
    const credentials = Object.entries(this.entry.credentials || {});
    for (const [key, value] of [...rows, ...credentials]) {
      const term = document.createElement("dt");
      term.textContent = key;
      const detail = document.createElement("dd");
      detail.textContent = String(value);
      const action = document.createElement("dd");
      action.appendChild(copyButton(String(value), `${this.name} ${key}`));
      list.append(term, detail, action);
    }
  }

  // ----- state --------------------------------------------------------------------------------------------
  async refreshState() {
    const state = await call(`${this.api}/state`);
    this.streams = state.streams || [];
    const pacing = Object.entries(state.pacing || {}).map(
      ([stream, p]) => `${stream} p99 ${Number(p.lateness_p99_ms ?? 0).toFixed(1)} ms`).join(", ");
    $(this.section, ".summary").textContent =
      `up ${state.uptime_s.toFixed(0)} s · ${state.tasks} tasks · ${state.workers.length} workers · ` +
      `streams: ${this.streams.join(", ") || "none"}` + (pacing ? ` · ${pacing}` : "");
    $(this.section, ".device-state").textContent = JSON.stringify(state.device_state, null, 2);
    this.updateStreamChoices();
    await this.refreshFaults();
  }

  // ----- previews -----------------------------------------------------------------------------------------
  async refreshPreviews() {
    // An emulator with nothing to preview is asked again every few ticks, not twice a second.
    this.previewTicks = (this.previewTicks || 0) + 1;
    if (!this.previewFigures.size && !this.audioRows.size && this.previewTicks % 4 !== 1) return;
    const listing = await call(`${this.api}/previews`);
    const box = $(this.section, ".previews");
    $(box, ".empty").classList.toggle("hidden", listing.video.length > 0);
    const live = new Set(listing.video.map((v) => v.stream));
    for (const [stream, figure] of this.previewFigures) {
      if (!live.has(stream)) { figure.remove(); this.previewFigures.delete(stream); }
    }
    await Promise.all(listing.video.map((item) => this.refreshFrame(box, item)));
    this.renderAudio(listing.audio);
  }

  async refreshFrame(box, item) {
    let figure = this.previewFigures.get(item.stream);
    if (!figure) {
      figure = document.createElement("figure");
      const image = document.createElement("img");
      image.alt = `Latest frame of ${item.stream}`;
      const caption = document.createElement("figcaption");
      figure.append(image, caption);
      box.appendChild(figure);
      this.previewFigures.set(item.stream, figure);
    }
    const response = await fetch(`/api/${encodeURIComponent(this.name)}${item.url}`);
    if (!response.ok) return;
    const stamp = JSON.parse(response.headers.get("X-Frame-Stamp") || "null");
    const blob = await response.blob();
    const image = $(figure, "img");
    const previous = image.src;
    image.src = URL.createObjectURL(blob);
    if (previous.startsWith("blob:")) URL.revokeObjectURL(previous);
    const caption = $(figure, "figcaption");
    caption.textContent = stamp
      ? `${item.stream} · frame ${stamp.index} · lateness ${stamp.lateness_ms} ms`
      : `${item.stream} · no stamp · ${item.fps} fps`;
    figure.dataset.stamp = stamp ? String(stamp.index) : "";
  }

  renderAudio(tracks) {
    const box = $(this.section, ".audio");
    const live = new Set(tracks.map((t) => t.stream));
    for (const [stream, row] of this.audioRows) {
      if (!live.has(stream)) { row.remove(); this.audioRows.delete(stream); }
    }
    for (const track of tracks) {
      let row = this.audioRows.get(track.stream);
      if (!row) {
        row = document.createElement("div");
        row.className = "audio-track";
        const label = document.createElement("label");
        label.textContent = track.stream;
        const meter = document.createElement("meter");
        meter.min = -60; meter.max = 0; meter.low = -30; meter.high = -6;
        label.appendChild(meter);
        const canvas = document.createElement("canvas");
        canvas.width = 120; canvas.height = 32;
        canvas.setAttribute("role", "img");
        row.append(label, canvas);
        box.appendChild(row);
        this.audioRows.set(track.stream, row);
      }
      const meter = $(row, "meter");
      meter.value = Math.max(-60, track.level_dbfs);
      meter.title = `${track.level_dbfs} dBFS (peak ${track.peak_dbfs})`;
      const canvas = $(row, "canvas");
      canvas.setAttribute("aria-label", `Waveform of ${track.stream}, level ${track.level_dbfs} dBFS`);
      drawWaveform(canvas, track.waveform);
    }
  }

  // ----- faults -------------------------------------------------------------------------------------------
  setUpFaultForm() {
    const form = $(this.section, ".fault-form");
    const type = form.elements.type;
    for (const action of [...STREAM_ACTIONS, ...HTTP_ACTIONS]) {
      const option = document.createElement("option");
      option.value = action;
      option.textContent = STREAM_ACTIONS.includes(action) ? `${action} (stream)` : `${action} (HTTP)`;
      type.appendChild(option);
    }
    const fieldsets = () => {
      const action = type.value;
      const stream = STREAM_ACTIONS.includes(action);
      for (const label of form.querySelectorAll(".for-stream")) label.classList.toggle("hidden", !stream);
      for (const label of form.querySelectorAll(".for-http")) label.classList.toggle("hidden", stream);
      for (const name of ["status", "delay", "stall", "close"]) {
        for (const label of form.querySelectorAll(`.for-${name}`)) label.classList.toggle("hidden", action !== name);
      }
      form.elements.path.required = !stream;
    };
    type.addEventListener("change", fieldsets);
    fieldsets();
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const output = $(form, ".fault-result");
      try {
        const rule = await call(`${this.api}/faults`, { method: "POST", body: faultRule(form) });
        say(output, `added ${rule.id}`, true);
        await this.refreshFaults();
      } catch (error) {
        say(output, error.message, false);
      }
    });
  }

  updateStreamChoices() {
    const select = $(this.section, ".fault-form").elements.stream;
    const wanted = ["*", ...this.streams];
    const current = [...select.options].map((o) => o.value);
    if (current.join("\n") === wanted.join("\n")) return;
    const chosen = select.value;
    select.replaceChildren(...wanted.map((name) => {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = name === "*" ? "every stream (*)" : name;
      return option;
    }));
    if (wanted.includes(chosen)) select.value = chosen;
  }

  async refreshFaults() {
    const { faults } = await call(`${this.api}/faults`);
    const body = $(this.section, ".faults tbody");
    body.replaceChildren(...faults.map((rule) => {
      const row = document.createElement("tr");
      const match = rule.match.stream !== undefined ? `stream ${rule.match.stream}`
        : `${rule.match.method || "any"} ${rule.match.path}`;
      for (const text of [rule.id, match, JSON.stringify(rule.action), String(rule.fired ?? 0)]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.appendChild(cell);
      }
      const cell = document.createElement("td");
      const remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "Remove";
      remove.setAttribute("aria-label", `Remove fault ${rule.id}`);
      remove.addEventListener("click", async () => {
        await fetch(`${this.api}/faults/${encodeURIComponent(rule.id)}`, { method: "DELETE" });
        await this.refreshFaults();
      });
      cell.appendChild(remove);
      row.appendChild(cell);
      return row;
    }));
  }

  // ----- scenario controls ------------------------------------------------------------------------------
  async renderScenarioControls() {
    const document_ = await call(`${this.api}/openapi.json`);
    const box = $(this.section, ".scenario");
    const prefix = "/_emulator/scenario/";
    const controls = Object.entries(document_.paths).filter(([path]) => path.startsWith(prefix)).sort();
    if (!controls.length) box.textContent = "This emulator has no scenario controls.";
    for (const [path, item] of controls) {
      box.appendChild(this.scenarioForm(path.slice(prefix.length), item.post));
    }
  }

  scenarioForm(control, operation) {
    const form = document.createElement("form");
    form.className = "scenario-form";
    form.dataset.control = control;
    const heading = document.createElement("h4");
    heading.textContent = control.replaceAll("_", " ");
    form.appendChild(heading);
    if (operation.summary || operation.description) {
      const help = document.createElement("p");
      help.textContent = operation.summary || operation.description;
      form.appendChild(help);
    }
    const schema = (((operation.requestBody || {}).content || {})["application/json"] || {}).schema || {};
    const required = new Set(schema.required || []);
    const fields = [];
    for (const [name, property] of Object.entries(schema.properties || {})) {
      const field = inputFor(name, property, required.has(name));
      fields.push(field);
      form.appendChild(field.label);
    }
    const submit = document.createElement("button");
    submit.type = "submit";
    submit.textContent = `Run ${control.replaceAll("_", " ")}`;
    const output = document.createElement("output");
    form.append(submit, output);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const body = {};
        for (const field of fields) {
          const value = field.read();
          if (value !== undefined) body[field.name] = value;
        }
        const result = await call(`${this.api}/scenario/${encodeURIComponent(control)}`, { method: "POST", body });
        say(output, JSON.stringify(result).slice(0, 200), true);
        await this.refreshState();
      } catch (error) {
        say(output, error.message, false);
      }
    });
    return form;
  }

  async reset() {
    const output = $(this.section, ".reset-result");
    try {
      await call(`${this.api}/reset`, { method: "POST", body: {} });
      say(output, "reset to boot state", true);
      await this.refreshState();
    } catch (error) {
      say(output, error.message, false);
    }
  }
}

function faultRule(form) {
  const f = form.elements;
  const type = f.type.value;
  const action = { type };
  if (type === "status") action.status = Number(f.status.value);
  if (type === "delay") { action.distribution = "fixed"; action.ms = Number(f.ms.value); }
  if (type === "stall") action.seconds = Number(f.seconds.value);
  if (type === "close") action.code = Number(f.code.value);
  const match = STREAM_ACTIONS.includes(type) ? { stream: f.stream.value || "*" } : { path: f.path.value };
  if (!STREAM_ACTIONS.includes(type) && f.method.value) match.method = f.method.value;
  const rule = { match, action, probability: Number(f.probability.value) };
  if (f.count.value) rule.count = Number(f.count.value);
  return rule;
}

function inputFor(name, property, required) {
  const label = document.createElement("label");
  label.textContent = name + (required ? " *" : "");
  let input;
  let read;
  const type = property.type || (property.enum ? "string" : "object");
  if (property.enum) {
    input = document.createElement("select");
    if (!required) input.appendChild(new Option("(default)", ""));
    for (const value of property.enum) input.appendChild(new Option(String(value), JSON.stringify(value)));
    read = () => (input.value === "" ? undefined : JSON.parse(input.value));
  } else if (type === "boolean") {
    input = document.createElement("select");
    for (const [text, value] of [["(default)", ""], ["true", "true"], ["false", "false"]]) {
      input.appendChild(new Option(text, value));
    }
    read = () => (input.value === "" ? undefined : input.value === "true");
  } else if (type === "integer" || type === "number") {
    input = document.createElement("input");
    input.type = "number";
    if (type === "number") input.step = "any";
    if (property.minimum !== undefined) input.min = property.minimum;
    if (property.maximum !== undefined) input.max = property.maximum;
    read = () => (input.value === "" ? undefined : Number(input.value));
  } else if (type === "string") {
    input = document.createElement("input");
    read = () => (input.value === "" ? undefined : input.value);
  } else {
    input = document.createElement("textarea");
    input.rows = 2;
    input.placeholder = "JSON";
    read = () => (input.value.trim() === "" ? undefined : JSON.parse(input.value));
  }
  input.name = name;
  if (required) input.required = true;
  if (property.description) input.title = property.description;
  if (property.default !== undefined && input.tagName === "INPUT") input.placeholder = String(property.default);
  label.appendChild(input);
  return { name, label, read };
}

function drawWaveform(canvas, points) {
  const context = canvas.getContext("2d");
  const { width, height } = canvas;
  context.clearRect(0, 0, width, height);
  context.strokeStyle = getComputedStyle(document.body).getPropertyValue("--accent") || "#0b57d0";
  context.beginPath();
  points.forEach((value, i) => {
    const x = (i / Math.max(points.length - 1, 1)) * width;
    const y = height / 2 - value * (height / 2 - 1);
    if (i === 0) context.moveTo(x, y); else context.lineTo(x, y);
  });
  context.stroke();
}

// ----- events -------------------------------------------------------------------------------------------
function startEvents() {
  const list = document.getElementById("events");
  const filter = document.getElementById("event-filter");
  const emulator = document.getElementById("event-emulator");
  const visible = (item) => {
    const kind = item.dataset.kind;
    const wanted = filter.value.trim();
    return (!wanted || kind === wanted || kind.startsWith(`${wanted}.`) || kind.includes(wanted))
      && (!emulator.value || item.dataset.emulator === emulator.value);
  };
  const apply = () => { for (const item of list.children) item.classList.toggle("hidden", !visible(item)); };
  filter.addEventListener("input", apply);
  emulator.addEventListener("change", apply);
  const source = new EventSource("/api/events");
  source.addEventListener("emulator", (message) => {
    const event = JSON.parse(message.data);
    const item = document.createElement("li");
    item.dataset.kind = event.kind;
    item.dataset.emulator = event.emulator;
    const time = new Date(event.time * 1000).toLocaleTimeString();
    const kind = document.createElement("span");
    kind.className = "kind";
    kind.textContent = event.kind;
    const detail = Object.entries(event.detail || {})
      .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" ");
    item.append(`${time} ${event.emulator} `, kind, ` ${detail.slice(0, 300)}`);
    item.classList.toggle("hidden", !visible(item));
    list.prepend(item);
    while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
  });
}

function every(period, task) {
  let running = false;
  const tick = async () => {
    if (running || document.hidden) return;
    running = true;
    try { await task(); } catch { /* the next tick tries again; the status line says what is down */ }
    running = false;
  };
  tick();
  return setInterval(tick, period);
}

async function main() {
  const status = document.getElementById("status");
  const { emulators } = await call("/api/endpoints");
  const main_ = document.getElementById("emulators");
  const nav = document.getElementById("nav");
  const select = document.getElementById("event-emulator");
  for (const [name, entry] of Object.entries(emulators)) {
    const view = new EmulatorView(name, entry);
    main_.appendChild(view.section);
    const link = document.createElement("a");
    link.href = `#emulator-${name}`;
    link.textContent = name;
    nav.appendChild(link);
    select.appendChild(new Option(name, name));
    view.renderScenarioControls().catch((error) => { $(view.section, ".scenario").textContent = error.message; });
    every(STATE_PERIOD_MS, () => view.refreshState());
    every(PREVIEW_PERIOD_MS, () => view.refreshPreviews());
  }
  status.textContent = `${Object.keys(emulators).length} emulators`;
  startEvents();
}

main().catch(failed);
