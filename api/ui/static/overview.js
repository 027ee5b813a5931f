// The data owner's overview: label → prediction cells (De-Confusion), a cell's examples in
// 2-D and as a list, batch relabel / confirm / remove, audit suspects, duplicates and the
// cleaning-progress plot. Everything goes through /api/v1/projects/<pid>/overview.
"use strict";

(() => {
  const {call, explain, el} = Cincer;
  const $ = id => document.getElementById(id);
  const POLL_MS = 2000;
  const THUMB_PX = 64;        // the least size of an image thumbnail in the cell list

  const state = {projects: [], project: null, overview: null, cell: null, items: [],
                 selected: new Set(), poll: null};

  const say = Cincer.say;

  function fail(error, what) {
    if (error.status === 401) { Cincer.signOut(); showSignIn(explain(error, what)); return; }
    if (error.status === 403 && what !== "loading the overview") {
      say("Only the admin token may change labels or recompute the overview; sign in " +
          "with it to do this.", "error");
      return;
    }
    say(explain(error, what), "error");
  }

  function showSignIn(text) {
    $("board").hidden = true;
    $("sign-in").hidden = false;
    $("sign-out").hidden = true;
    say(text || "", text ? "error" : "info");
    $("token").focus();
  }

  const className = k => state.project.classes[k] !== undefined ?
    state.project.classes[k] : "class " + k;
  const path = rest => `/projects/${state.project.id}/overview${rest || ""}`;

  async function start() {
    $("sign-in").hidden = true;
    $("sign-out").hidden = false;
    try {
      state.projects = (await call("GET", "/projects")).items;
    } catch (error) { fail(error, "listing your projects"); return; }
    if (!state.projects.length) { say("This token sees no project yet.", "info"); return; }
    const wanted = Cincer.project();
    const chosen = state.projects.find(p => p.id === wanted) || state.projects[0];
    $("project").replaceChildren(...state.projects.map(p =>
      el("option", {value: p.id, text: `${p.name} (#${p.id})`})));
    $("project").value = chosen.id;
    document.querySelector(".project-pick").hidden = state.projects.length < 2;
    open(chosen);
  }

  function open(project) {
    state.project = project;
    state.cell = null;
    state.selected.clear();
    say("", "info");                         // a message about the last project is stale
    Cincer.setProject(project.id);
    $("to-review").href = $("to-review").pathname + "?project=" + project.id;
    $("board").hidden = false;
    $("detail").hidden = true;
    $("relabel-to").replaceChildren(...project.classes.map((name, k) =>
      el("option", {value: k, text: name})));
    load();
    loadPlot();
    if (window.CincerCrowd) CincerCrowd.load(project, fail);   // annotators and sources
  }

  // -- the matrix ------------------------------------------------------------------------
  async function load() {
    clearTimeout(state.poll);
    let view;
    try {
      view = await call("GET", path());
    } catch (error) { fail(error, "loading the overview"); return; }
    state.overview = view;
    renderStatus(view);
    renderMatrix(view);
    renderSuspects(view);
    renderDuplicates(view);
    if (view.status === "computing") state.poll = setTimeout(load, POLL_MS);
  }

  function renderStatus(view) {
    const when = view.computed_at ? new Date(view.computed_at).toLocaleString() : "";
    const texts = {
      missing: "No overview has been computed for this project yet.",
      computing: "Computing the overview from the latest model… this page updates itself.",
      failed: "The last computation failed: " + (view.error || "unknown error"),
      done: `From model version ${view.model_version}, over ${view.n_examples} examples ` +
            `(${when}).` + (view.stale ? " Labels changed since; compute again to update." : ""),
    };
    $("status").textContent = texts[view.status] || view.status;
    $("recompute").textContent = view.status === "missing" ? "Compute" : "Compute again";
    $("recompute").disabled = view.status === "computing";
  }

  function renderMatrix(view) {
    const table = $("matrix");
    if (!view.cells.length) { table.replaceChildren(); return; }
    const most = Math.max(...view.cells.map(c => c.count));
    const rows = new Map();
    for (const cell of view.cells) {             // already largest first
      if (!rows.has(cell.label)) rows.set(cell.label, []);
      rows.get(cell.label).push(cell);
    }
    const width = Math.max(...[...rows.values()].map(r => r.length));
    const body = [...rows.keys()].sort((a, b) => a - b).map(label => {
      const cells = rows.get(label).map(cell => renderCell(cell, most));
      while (cells.length < width) cells.push(el("td", {class: "spacer"}));
      return el("tr", {}, el("th", {scope: "row", text: "labelled " + className(label)}),
                ...cells);
    });
    table.replaceChildren(el("tbody", {}, body));
  }

  function renderCell(cell, most) {
    const agree = cell.label === cell.prediction;
    const strength = Math.log1p(cell.count) / Math.log1p(most);     // log-scaled saturation
    const hue = agree ? 218 : 28;
    const td = el("td", {class: "cell", tabindex: 0, role: "button",
                         "data-label": cell.label, "data-prediction": cell.prediction,
                         "aria-label": `labelled ${className(cell.label)}, predicted ` +
                                       `${className(cell.prediction)}: ${cell.count}`,
                         onclick: () => openCell(cell),
                         onkeydown: e => { if (e.key === "Enter" || e.key === " ") {
                           e.preventDefault(); openCell(cell); } }},
      el("div", {class: "to", text: "→ " + className(cell.prediction)}),
      el("div", {class: "count", text: cell.count}),
      cell.duplicates ? el("span", {class: "dup", title: "near-duplicate pairs",
                                    text: "≈ " + cell.duplicates}) : null);
    td.style.background = `hsl(${hue}, ${Math.round(25 + 60 * strength)}%, ` +
                          `${Math.round(94 - 44 * strength)}%)`;
    td.style.color = strength > 0.75 ? "#fff" : "";
    const canvas = el("canvas", {width: 90, height: 20});
    drawHistogram(canvas, cell.histogram, strength > 0.75 ? "#fff" : "#1d2430");
    td.append(canvas);
    if (state.cell && state.cell.label === cell.label &&
        state.cell.prediction === cell.prediction) td.classList.add("selected");
    return td;
  }

  function drawHistogram(canvas, counts, color) {
    const ctx = canvas.getContext("2d");
    const top = Math.max(1, ...counts);
    const w = canvas.width / counts.length;
    ctx.fillStyle = color;
    ctx.globalAlpha = 0.8;
    counts.forEach((c, k) => {
      if (!c) return;
      const h = Math.max(2, Math.round((canvas.height - 2) * Math.sqrt(c / top)));
      ctx.fillRect(k * w + 1, canvas.height - h, w - 2, h);
    });
  }

  // -- one cell --------------------------------------------------------------------------
  async function openCell(cell) {
    state.cell = cell;
    state.selected.clear();
    for (const td of document.querySelectorAll("#matrix td.cell")) {
      td.classList.toggle("selected", Number(td.dataset.label) === cell.label &&
                                      Number(td.dataset.prediction) === cell.prediction);
    }
    $("detail").hidden = false;
    $("detail-title").textContent = `Labelled ${className(cell.label)}, predicted ` +
      `${className(cell.prediction)} — ${cell.count} examples`;
    $("relabel-to").value = cell.prediction;
    await loadCell();
    $("detail").scrollIntoView({block: "nearest"});
  }

  async function loadCell() {
    const lo = Number($("min-score").value) || 0, hi = Number($("max-score").value) || 1;
    const {label, prediction} = state.cell;
    try {
      const cell = await call("GET", path(`/cells/${label}/${prediction}` +
                                          `?min_score=${lo}&max_score=${hi}`));
      state.items = cell.items;
    } catch (error) { fail(error, "loading the cell"); return; }
    for (const id of [...state.selected]) {
      if (!state.items.some(item => item.id === id)) state.selected.delete(id);
    }
    renderCellDetail();
  }

  function renderCellDetail() {
    drawEmbedding();
    renderList();
    $("selected-count").textContent = `${state.selected.size} selected`;
  }

  // Light orange at score 0.5 to dark red at 1.
  function scoreColor(score, alpha) {
    const t = Math.max(0, Math.min(1, (score - 0.5) / 0.5));
    return `hsla(${Math.round(30 - 25 * t)}, 85%, ${Math.round(72 - 42 * t)}%, ${alpha})`;
  }

  function drawEmbedding() {
    const canvas = $("embedding");
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    for (const item of state.items) {
      if (!item.xy) continue;
      const [x, y] = [item.xy[0] * canvas.width, item.xy[1] * canvas.height];
      ctx.beginPath();
      ctx.arc(x, y, 6, 0, 2 * Math.PI);
      ctx.fillStyle = scoreColor(item.score, 0.85);
      ctx.fill();
      if (state.selected.has(item.id)) {
        ctx.lineWidth = 3;
        ctx.strokeStyle = "#1d2430";
        ctx.stroke();
      }
    }
  }

  function toggle(id) {
    if (state.selected.has(id)) state.selected.delete(id); else state.selected.add(id);
    syncSelection();
  }

  // Show the selection without rebuilding the list (keeps focus and scroll position).
  function syncSelection() {
    for (const row of document.querySelectorAll("#cell-list tr[data-id]")) {
      const chosen = state.selected.has(Number(row.dataset.id));
      row.classList.toggle("chosen", chosen);
      row.querySelector("input[type=checkbox]").checked = chosen;
    }
    drawEmbedding();
    $("selected-count").textContent = `${state.selected.size} selected`;
  }

  // An image example at THUMB_PX or more: whole blocks per pixel, never smoothed (an 8×8
  // digit is 64 px, 8 px a pixel).
  function thumbnail(x) {
    const shape = state.project.input_shape;
    if (!Cincer.isImage(shape)) return null;
    const canvas = el("canvas", {class: "pixels"});
    const side = Math.max(shape[0], shape[1]);
    Cincer.drawImage(canvas, x, shape, Math.ceil(THUMB_PX / side) * side);
    return canvas;
  }

  function badges(item) {
    const out = [];
    if (item.status === "removed") out.push(el("span", {class: "badge removed", text: "removed"}));
    if (item.confirmed) out.push(el("span", {class: "badge confirmed", text: "confirmed"}));
    if (state.cell && item.label !== state.cell.label) {
      out.push(el("span", {class: "badge relabelled", text: "now " + className(item.label)}));
    }
    return out;
  }

  function renderList() {
    const image = Cincer.isImage(state.project.input_shape);
    const head = el("tr", {}, el("th", {text: ""}), image ? el("th", {text: ""}) : null,
                    el("th", {text: "example"}), el("th", {text: "score"}),
                    el("th", {text: "label now"}));
    const rows = state.items.map(item => el("tr",
      {class: state.selected.has(item.id) ? "chosen" : null, "data-id": item.id},
      el("td", {}, el("input", {type: "checkbox", "aria-label": "select example " + item.id,
                                checked: state.selected.has(item.id),
                                onchange: () => toggle(item.id)})),
      image ? el("td", {class: "thumb"}, thumbnail(item.x)) : null,
      el("td", {class: "example-name", text: item.external_id ?? `#${item.id}`,
                title: `service id ${item.id}`}),
      el("td", {text: item.score.toFixed(3)}),
      el("td", {}, className(item.label), ...badges(item))));
    const empty = state.items.length ? null :
      el("tr", {}, el("td", {text: "No example in this score range."}));
    $("cell-list").replaceChildren(el("thead", {}, head), el("tbody", {}, rows, empty));
  }

  async function act(action) {
    if (!state.selected.size) { say("Select examples in the list or the plot first.", "info"); return; }
    if (action === "gold") {                 // their current labels become trusted
      try {
        const done = await call("POST", `/projects/${state.project.id}/gold`,
                                {example_ids: [...state.selected]});
        say(`${done.total} examples marked as gold: annotators are checked on them.`, "info");
      } catch (error) { fail(error, "marking gold examples"); }
      return;
    }
    const body = {action, example_ids: [...state.selected],
                  reason: $("reason").value.trim() || null};
    if (action === "relabel") body.label = Number($("relabel-to").value);
    let result;
    try {
      result = await call("POST", path("/actions"), body);
    } catch (error) { fail(error, "changing the examples"); return; }
    const verbs = {relabel: `relabelled as ${className(body.label)}`,
                   confirm: "confirmed (added to the trusted set)",
                   remove: "removed from the training set"};
    say(`${result.changed} of ${body.example_ids.length} examples ${verbs[action]}; ` +
        "each change is in the example's label history.", "info");
    state.selected.clear();
    await loadCell();
    load();
    loadPlot();
  }

  // -- underneath ------------------------------------------------------------------------
  function renderSuspects(view) {
    const audit = view.audit;
    if (!audit || !audit.suspects.length) {
      $("suspects").replaceChildren(el("p", {class: "hint", text: "No finished audit yet " +
        "(an admin can start one: POST /projects/<pid>/audits)."}));
      return;
    }
    const rows = audit.suspects.map(s => el("tr", {},
      el("td", {text: "#" + s.example_id}), el("td", {text: Number(s.score).toFixed(3)}),
      el("td", {text: s.label !== undefined ? className(s.label) : ""})));
    $("suspects").replaceChildren(
      el("p", {class: "hint", text: `Audit #${audit.id} (${audit.detectors.join(", ")}).`}),
      el("table", {}, el("thead", {}, el("tr", {}, el("th", {text: "example"}),
         el("th", {text: "score"}), el("th", {text: "label"}))), el("tbody", {}, rows)));
  }

  function renderDuplicates(view) {
    const pairs = view.duplicates.concat(view.audit ? view.audit.duplicates : []);
    if (!pairs.length) {
      $("duplicates").replaceChildren(el("p", {class: "hint", text: "No near-duplicates " +
        "found inside any cell."}));
      return;
    }
    const rows = pairs.map(p => el("tr", {},
      el("td", {text: `#${p.first} and #${p.second}`}),
      el("td", {text: Number(p.similarity).toFixed(3)}),
      el("td", {text: `${className(p.label)} → ${className(p.prediction)}`})));
    $("duplicates").replaceChildren(el("table", {},
      el("thead", {}, el("tr", {}, el("th", {text: "pair"}), el("th", {text: "similarity"}),
                         el("th", {text: "cell"}))), el("tbody", {}, rows)));
  }

  async function loadPlot() {
    await Promise.all([drawPlot("progress-plot", "/progress.png", "the progress plot"),
                       drawPlot("curve-plot", "/curve.png", "the cleaning curve")]);
  }

  async function drawPlot(id, png, what) {
    const img = $(id);
    try {
      const response = await fetch(document.body.dataset.api + path(png),
                                   {headers: {"Authorization": "Bearer " + Cincer.token()}});
      if (!response.ok) throw new Cincer.ApiError(response.status, "plot", response.statusText);
      const url = URL.createObjectURL(await response.blob());
      if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
      img.src = url;
    } catch (error) { img.alt = explain(error, "drawing " + what); }
  }

  // -- wiring ----------------------------------------------------------------------------
  $("recompute").addEventListener("click", async () => {
    try {
      await call("POST", path());
    } catch (error) { fail(error, "computing the overview"); return; }
    say("", "info");
    load();
  });
  $("filter").addEventListener("click", loadCell);
  $("select-all").addEventListener("click", () => {
    for (const item of state.items) state.selected.add(item.id);
    syncSelection();
  });
  $("select-none").addEventListener("click", () => { state.selected.clear(); syncSelection(); });
  $("do-relabel").addEventListener("click", () => act("relabel"));
  $("do-confirm").addEventListener("click", () => act("confirm"));
  $("do-remove").addEventListener("click", () => act("remove"));
  $("do-gold").addEventListener("click", () => act("gold"));
  $("embedding").addEventListener("click", event => {
    const canvas = event.target, box = canvas.getBoundingClientRect();
    const x = (event.clientX - box.left) * canvas.width / box.width;
    const y = (event.clientY - box.top) * canvas.height / box.height;
    let best = null, bestDistance = 10;
    for (const item of state.items) {
      if (!item.xy) continue;
      const d = Math.hypot(item.xy[0] * canvas.width - x, item.xy[1] * canvas.height - y);
      if (d < bestDistance) { best = item; bestDistance = d; }
    }
    if (best) toggle(best.id);
  });
  Cincer.onSignIn(start);
  $("sign-out").addEventListener("click", () => { Cincer.signOut(); showSignIn(); });
  $("project").addEventListener("change", event => {
    const project = state.projects.find(p => p.id === Number(event.target.value));
    if (project) open(project);
  });

  if (Cincer.token()) start(); else showSignIn();
})();
