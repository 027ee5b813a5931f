// The annotator page: lease a query, show its example and counter-example side by side,
// explain the model's doubt, and send the answer (or a skip, or a correction) through the
// REST API. Works with the keyboard alone; see the key list on the page.
"use strict";

(() => {
  const {call, explain, el} = Cincer;
  const $ = id => document.getElementById(id);
  const SIDES = ["example", "counterexample"];
  const RESERVED = new Set(["s", "k", "c"]);   // skip, keep, correct
  const IDLE_POLL_MS = 4000;
  const STD_SAMPLE = 500;     // examples read for the features' standard deviations
  const ANSWER_RETRY_MS = 1000;   // wait before resending an answer whose connection failed

  const state = {
    projects: [], project: null, query: null, active: "example",
    choice: {example: null, counterexample: null}, last: null, busy: false,
    skipped: new Set(), poll: null, pressedAt: null, sortByDifference: true,
    answerKey: null,      // {query, body, key}: the Idempotency-Key of the answer being sent
  };
  // Timings the browser tests read: first pair after load, and key press -> next pair.
  const metrics = window.cincerMetrics = {firstPairMs: null, nextPairMs: []};

  // -- messages ------------------------------------------------------------------------
  const say = Cincer.say;

  function fail(error, what) {
    if (error.status === 401) {
      Cincer.signOut();
      showSignIn(explain(error, what));
      return;
    }
    say(explain(error, what), "error");
  }

  // -- sign-in and project -------------------------------------------------------------
  function showSignIn(text) {
    for (const id of ["review", "idle", "last"]) $(id).hidden = true;
    $("sign-in").hidden = false;
    $("sign-out").hidden = true;
    document.querySelector(".project-pick").hidden = true;
    say(text || "", text ? "error" : "info");
    $("token").focus();
  }

  async function start() {
    $("sign-in").hidden = true;
    $("sign-out").hidden = false;
    let listing;
    try {
      listing = await call("GET", "/projects");
    } catch (error) { fail(error, "listing your projects"); return; }
    state.projects = listing.items;
    if (!state.projects.length) {
      say("This token sees no project yet. Ask an admin to create one.", "info");
      return;
    }
    const wanted = Cincer.project();
    const chosen = state.projects.find(p => p.id === wanted) || state.projects[0];
    const select = $("project");
    select.replaceChildren(...state.projects.map(p =>
      el("option", {value: p.id, text: `${p.name} (#${p.id})`})));
    select.value = chosen.id;
    document.querySelector(".project-pick").hidden = state.projects.length < 2;
    await openProject(chosen);
  }

  async function openProject(project) {
    clearTimeout(state.poll);
    state.project = project;
    state.last = null;
    state.featureStd = null;
    say("", "info");                         // a message about the last project is stale
    $("last").hidden = true;
    Cincer.setProject(project.id);
    const link = $("to-overview");
    link.href = link.pathname + "?project=" + project.id;
    refreshStats();
    loadFeatureStd(project);
    await next();
  }

  // Each feature's standard deviation over the project's examples (one page of up to
  // STD_SAMPLE of them), so the features table ranks differences in each feature's own
  // units; tabular projects only (pixels and hashed text need no ranking).
  async function loadFeatureStd(project) {
    if (project.input_kind === "text" || Cincer.isImage(project.input_shape)) return;
    let page;
    try {
      page = await call("GET", `/projects/${project.id}/examples?limit=${STD_SAMPLE}`);
    } catch (error) { return; }            // the table falls back to raw differences
    if (state.project !== project || page.items.length < 2) return;
    const rows = page.items.map(item => [item.x].flat(3));
    const n = rows.length;
    const mean = rows[0].map((_, i) => rows.reduce((t, r) => t + r[i], 0) / n);
    state.featureStd = mean.map((m, i) =>
      Math.sqrt(rows.reduce((t, r) => t + (r[i] - m) ** 2, 0) / n));
    if (state.query) renderFeatures(state.query);
  }

  async function refreshStats() {
    const pid = state.project.id;
    try {
      const stats = await call("GET", `/projects/${pid}/stats`);
      const q = stats.queries;
      let text = `Answered ${q.answered} · Open ${q.open + q.leased}`;
      if (q.computing) text += ` · ${q.computing} being prepared`;
      $("progress").textContent = text;
    } catch (error) { /* progress is a nicety; the next action reports failures */ }
  }

  // -- the next pair -------------------------------------------------------------------
  async function next() {
    clearTimeout(state.poll);
    let query;
    try {
      query = await call("POST", `/projects/${state.project.id}/queries/next`);
    } catch (error) {
      fail(error, "asking for the next pair");
      state.poll = setTimeout(next, IDLE_POLL_MS);
      return;
    }
    if (query === null) {
      state.query = null;
      $("review").hidden = true;
      $("idle").hidden = false;
      state.pressedAt = null;
      state.poll = setTimeout(() => { refreshStats(); next(); }, IDLE_POLL_MS);
      return;
    }
    show(query);
  }

  function show(query) {
    state.query = query;
    state.choice = {example: null, counterexample: null};
    state.active = "example";
    $("idle").hidden = true;
    const review = $("review");
    review.hidden = false;
    review.dataset.query = query.id;                       // read by the browser tests
    review.dataset.shown = String(Number(review.dataset.shown || 0) + 1);
    renderExplanation(query);
    for (const side of SIDES) renderSide(side);
    renderFeatures(query);
    renderChoices();
    if (state.skipped.has(query.id)) {
      say("You skipped this pair, but it is still first in line, so the server offered it " +
          "again. Answer it, or skip it once more.", "info");
    }
    const pressed = state.pressedAt;
    state.pressedAt = null;
    requestAnimationFrame(() => {            // the pair is on screen at the next frame
      const now = performance.now();
      if (metrics.firstPairMs === null) metrics.firstPairMs = now;
      if (pressed !== null) metrics.nextPairMs.push(now - pressed);
    });
  }

  function className(index) {
    const classes = state.project.classes;
    return index === null || index === undefined ? "—" :
      (classes[index] !== undefined ? classes[index] : "class " + index);
  }

  function percent(p) { return (100 * p).toFixed(p >= 0.995 || p < 0.005 ? 0 : 1) + "%"; }

  function renderExplanation(q) {
    const ex = q.example, ce = q.counterexample;
    const probs = ex.probabilities || [];
    const pred = ex.prediction, given = ex.label;
    const strong = text => el("strong", {text});
    const parts = [
      el("h2", {text: "Is the example's label right?"}),
      el("p", {}, "The model thinks the example is ", strong(className(pred)),
         ` (${percent(probs[pred] || 0)} sure), but it is labelled `, strong(className(given)),
         ` (the model gives that label ${percent(probs[given] || 0)}).`),
      // Why this pair is asked: derived from the query by the service (its origin, its
      // margin against the τ it was screened with, the counter-example's current label).
      ...(q.explanation ? q.explanation.sentences : []).slice(0, 2).map(
        sentence => el("p", {class: "why", text: sentence})),
    ];
    if (ce) {
      const score = q.counterexample_score;
      const relation = q.explanation && q.explanation.counterexample_relation;
      parts.push(relation === "contradicts_prediction"
        ? el("p", {class: "why"}, q.explanation.sentences[q.explanation.sentences.length - 1])
        : el("p", {}, "The counter-example on the right is the training example " +
          "that most supports the model's view: it is labelled ", strong(className(ce.label)),
          score === null || score === undefined ? "" :
            ` (influence score ${score.toPrecision(3)}: how strongly it pushes the model ` +
            "towards its prediction)",
          ". If its label is wrong, it may be what taught the model the mistake."));
      const alts = q.alternatives || [];
      if (alts.length) {
        parts.push(el("p", {class: "alternatives"}, "Next in the ranking: ",
          ...alts.flatMap((a, i) => [i ? ", " : "",
            el("span", {text: `example ${exampleName(a)}` +
              ` labelled ${a.label_name ?? "?"}, score ${a.score.toPrecision(3)}`})]),
          "."));
      }
    } else {
      parts.push(el("p", {}, "No counter-example could be found" +
        (q.note ? ` (${q.note})` : "") + "; only the example needs your answer."));
    }
    parts.push(el("p", {class: "hint"}, "Either label may be the wrong one — or both may be " +
      "right and the model mistaken. Give each side the label you believe is true."));
    $("explain").replaceChildren(...parts);
  }

  function renderSide(side) {
    const box = $("side-" + side);
    const data = state.query[side];
    box.classList.toggle("empty", !data);
    const render = box.querySelector(".render");
    const labels = box.querySelector(".labels");
    const probs = box.querySelector(".probs");
    if (!data) {
      render.replaceChildren(el("p", {class: "hint", text: "No counter-example for this pair."}));
      labels.replaceChildren();
      probs.replaceChildren();
      box.querySelector(".choices").replaceChildren();
      return;
    }
    const shape = state.project.input_shape;
    if (state.project.input_kind === "text") {
      render.replaceChildren(el("blockquote", {class: "utterance", text: data.text || ""}));
    } else if (Cincer.isImage(shape)) {
      const canvas = el("canvas", {class: "pixels", role: "img",
                                   "aria-label": `${side} as an image`});
      Cincer.drawImage(canvas, data.x, shape, 168);
      render.replaceChildren(canvas);
    } else {
      render.replaceChildren();
    }
    labels.replaceChildren(
      el("div", {}, "Current label: ", el("strong", {class: "given", text: className(data.label)})),
      el("div", {}, "Model says: ", el("strong", {text: className(data.prediction)})),
      el("div", {class: "muted example-name", text: `example ${exampleName(data)}`,
                 title: `service id ${data.id}`}));
    const p = data.probabilities || [];
    probs.replaceChildren(...state.project.classes.map((name, k) => {
      const bar = el("span", {class: "bar"});
      bar.style.width = (100 * (p[k] || 0)).toFixed(1) + "%";
      const row = el("div", {class: "prob" + (k === data.prediction ? " pred" : "") +
                                    (k === data.label ? " given" : "")},
        el("span", {class: "name", text: name}),
        el("span", {class: "track"}, bar),
        el("span", {class: "pct", text: percent(p[k] || 0)}));
      row.title = (k === data.label ? "current label; " : "") +
                  (k === data.prediction ? "the model's prediction" : "");
      return row;
    }));
  }

  // An example as people know it: its external id (yours) when it has one, else ours.
  const exampleName = e => e.external_id ?? e.id;

  // Keys for the classes: digits for the first ten, then a unique, unreserved first letter.
  function classKeys() {
    const classes = state.project.classes;
    const firsts = {};
    for (const name of classes) {
      const f = name.trim().charAt(0).toLowerCase();
      firsts[f] = (firsts[f] || 0) + 1;
    }
    return classes.map((name, k) => {
      const f = name.trim().charAt(0).toLowerCase();
      const letter = /[a-z]/.test(f) && firsts[f] === 1 && !RESERVED.has(f) ? f : null;
      return {digit: k < 10 ? String(k) : null, letter};
    });
  }

  function renderChoices() {
    const keys = classKeys();
    for (const side of SIDES) {
      const box = $("side-" + side);
      box.classList.toggle("active", state.active === side);
      const data = state.query[side];
      if (!data) continue;
      const chosen = state.choice[side];
      const buttons = state.project.classes.map((name, k) => {
        const hint = [keys[k].digit, keys[k].letter].filter(Boolean).join(" / ");
        return el("button", {type: "button", class: "choice",
                             "aria-pressed": String(chosen === k),
                             onclick: () => pick(side, k)},
                  hint ? el("kbd", {text: hint}) : null, " ", name);
      });
      buttons.push(el("button", {type: "button", class: "choice keep",
                                 "aria-pressed": String(chosen === data.label),
                                 onclick: () => pick(side, data.label)},
                      el("kbd", {text: "K"}), ` Label is right (${className(data.label)})`));
      box.querySelector(".choices").replaceChildren(...buttons);
    }
    const ce = state.query.counterexample;
    const parts = [`Example → ${state.choice.example === null ? "not chosen yet" :
                                 className(state.choice.example)}`];
    if (ce) {
      parts.push(`counter-example → ${state.choice.counterexample === null ?
        "not sure (left as it is)" : className(state.choice.counterexample)}`);
    }
    $("choice-summary").textContent = parts.join(" · ");
  }

  function pick(side, label) {
    if (!state.query || !state.query[side]) return;
    state.choice[side] = label;
    state.active = side;
    renderChoices();
  }

  function switchSide(backwards) {
    if (!state.query || !state.query.counterexample) return;
    state.active = state.active === "example" ? "counterexample" : "example";
    renderChoices();
  }

  function renderFeatures(q) {
    const ex = q.example, ce = q.counterexample;
    const shape = state.project.input_shape;
    const details = $("features");
    // A text's hashed n-gram features mean nothing to a person: the text is the input.
    details.hidden = state.project.input_kind === "text";
    if (details.hidden) return;
    const featureNames = state.project.feature_names;
    const a = [ex.x].flat(3), b = ce ? [ce.x].flat(3) : null;
    const diffs = b ? a.map((v, i) => Math.abs(v - b[i])) : null;
    // Ranked by the standardized difference (|difference| / the feature's standard
    // deviation over the project), so features in large units (areas) do not always come
    // first; raw differences until the deviations are known.
    const std = state.featureStd && state.featureStd.length === a.length ?
      state.featureStd : null;
    const scaled = diffs && std ? diffs.map((d, i) => std[i] > 0 ? d / std[i] :
                                                     (d > 0 ? Infinity : 0)) : null;
    const rank = scaled || diffs;
    const top = new Set();
    if (rank) {
      const order = rank.map((d, i) => [d, i]).sort((u, v) => v[0] - u[0]);
      const n = Math.min(5, Math.max(3, Math.ceil(a.length * 0.05)));
      for (const [d, i] of order.slice(0, n)) if (d > 0) top.add(i);
    }
    const name = i => {
      if (featureNames && featureNames[i] !== undefined) return featureNames[i];
      if (shape.length < 2) return `feature ${i}`;
      const c = shape.length === 3 ? shape[2] : 1;
      const pix = Math.floor(i / c);
      const pos = `row ${Math.floor(pix / shape[1])}, col ${pix % shape[1]}`;
      return c > 1 ? `${pos}, ch ${i % c}` : pos;
    };
    const fmt = v => (Math.abs(v) >= 1000 || (v !== 0 && Math.abs(v) < 0.01)) ?
      v.toExponential(2) : (+v.toFixed(3)).toString();
    const head = el("tr", {}, el("th", {text: "feature"}), el("th", {text: "example"}),
                    b ? el("th", {text: "counter-example"}) : null,
                    b ? el("th", {text: "|difference|"}) : null,
                    scaled ? el("th", {text: "in std. dev.",
                                       title: "|difference| / the feature's standard " +
                                              "deviation over the project"}) : null);
    const order = a.map((_, i) => i);
    if (b && state.sortByDifference) order.sort((i, j) => rank[j] - rank[i]);
    const rows = order.map(i => el("tr", {class: top.has(i) ? "differs" : null,
                                          "data-feature": i},
      el("td", {text: name(i)}), el("td", {text: fmt(a[i])}),
      b ? el("td", {text: fmt(b[i])}) : null, b ? el("td", {text: fmt(diffs[i])}) : null,
      scaled ? el("td", {text: Number.isFinite(scaled[i]) ? fmt(scaled[i]) : "—"}) : null));
    const how = scaled ? "relative to each feature's spread over the project (|difference| " +
      "divided by its standard deviation); the values are as sent" :
      "(largest absolute difference)";
    const tools = b ? el("div", {class: "table-tools"},
      el("p", {class: "hint", text: "Highlighted: the features where the two sides differ " +
                                    "most " + how + "."}),
      el("button", {type: "button", class: "link", onclick: () => {
        state.sortByDifference = !state.sortByDifference;
        renderFeatures(q);
      }}, state.sortByDifference ? "Show in feature order" : "Sort by difference")) : null;
    const table = el("table", {class: "features"}, el("thead", {}, head),
                     el("tbody", {}, rows));
    details.querySelector(".table-wrap").replaceChildren(table);
    const old = details.querySelector(".table-tools");
    if (old) old.remove();
    if (tools) details.querySelector(".table-wrap").before(tools);
    details.open = !Cincer.isImage(shape);
  }

  // -- actions -------------------------------------------------------------------------
  async function submit() {
    const q = state.query;
    if (!q || state.busy) return;
    if (state.choice.example === null) {
      state.pressedAt = null;
      say("Pick a label for the example first: a class button, its key, or K to keep " +
          "the current label.", "info");
      return;
    }
    const body = answerBody(state.choice.example,
                            q.counterexample ? state.choice.counterexample : null, q);
    state.busy = true;
    try {
      await sendAnswer(q, body);
      state.last = {query: q, answer: body};
      renderLast();
      say("", "info");
    } catch (error) {
      state.busy = false;
      if (error.status === 409 && error.details.already_answered) {
        // Our answer reached the server before (a retry after a lost response, or a second
        // press): the first answer stands, nothing was applied twice.
        say("Your answer to this pair was already saved. Here is the next one.", "info");
        refreshStats();
        await next();
      } else if (error.status === 409) {
        say("Your answer was not saved: you no longer hold this pair (your hold ran out, " +
            "or someone else answered it first). Here is the next one.", "warn");
        refreshStats();
        await next();
      } else {
        state.pressedAt = null;
        fail(error, "saving your answer");
      }
      return;
    }
    state.busy = false;
    refreshStats();
    await next();
  }

  // Send an answer under one Idempotency-Key per pair and answer: a press again after a
  // network failure reuses it, and one automatic retry follows a lost connection; the
  // server applies the answer once and gives the stored response back to a retry.
  async function sendAnswer(q, body) {
    const text = JSON.stringify(body);
    if (!state.answerKey || state.answerKey.query !== q.id || state.answerKey.body !== text) {
      const random = (window.crypto && crypto.randomUUID) ? crypto.randomUUID()
        : String(Date.now()) + "-" + Math.random().toString(16).slice(2);
      state.answerKey = {query: q.id, body: text, key: "answer-" + random};
    }
    const path = `/projects/${state.project.id}/queries/${q.id}/answer`;
    const headers = {"Idempotency-Key": state.answerKey.key};
    try {
      return await call("POST", path, body, headers);
    } catch (error) {
      if (error.status !== 0) throw error;
      await new Promise(resolve => setTimeout(resolve, ANSWER_RETRY_MS));
      return await call("POST", path, body, headers);
    }
  }

  // The answer as the API takes it: a counter-example left unlabelled is "not sure".
  function answerBody(exampleLabel, counterLabel, q) {
    const body = {example_label: exampleLabel, counterexample_label: counterLabel};
    if (q.counterexample && counterLabel === null) body.counterexample_not_sure = true;
    return body;
  }

  async function skip() {
    const q = state.query;
    if (!q || state.busy) return;
    state.busy = true;
    try {
      await call("POST", `/projects/${state.project.id}/queries/${q.id}/release`);
      state.skipped.add(q.id);
      say("Skipped: the pair went back to the queue for someone else.", "info");
    } catch (error) {
      state.busy = false;
      state.pressedAt = null;
      if (error.status === 409) {
        say("This pair was no longer yours to skip (your hold ran out or it was answered). " +
            "Here is the next one.", "warn");
        await next();
      } else {
        fail(error, "skipping this pair");
      }
      return;
    }
    state.busy = false;
    refreshStats();
    await next();
  }

  function describe(answer, q) {
    const parts = [];
    const side = (label, data, what) => {
      if (label === null || label === undefined || !data) return;
      parts.push(label === data.label ? `${what} kept as ${className(label)}` :
        `${what} relabelled ${className(data.label)} → ${className(label)}`);
    };
    side(answer.example_label, q.example, "example");
    side(answer.counterexample_label, q.counterexample, "counter-example");
    if (q.counterexample && answer.counterexample_label === null) {
      parts.push("counter-example: not sure, left as it was");
    }
    return parts.join("; ");
  }

  function renderLast(corrected) {
    const {query, answer} = state.last;
    $("last").hidden = false;
    $("correct-form").hidden = true;
    $("correct-open").hidden = false;
    $("last-text").textContent = (corrected ? "Corrected — " : "") +
      `pair #${query.id}: ${describe(answer, query)}.`;
  }

  function openCorrection() {
    if (!state.last) return;
    const {query, answer} = state.last;
    const options = (selected, allowNone) => [
      allowNone ? el("option", {value: "", text: "not sure (leave as it is)"}) : null,
      ...state.project.classes.map((name, k) => el("option", {value: k, text: name}))]
      .filter(Boolean);
    const exSelect = $("correct-example");
    exSelect.replaceChildren(...options());
    exSelect.value = String(answer.example_label);
    const ceSelect = $("correct-counterexample");
    $("correct-ce-wrap").hidden = !query.counterexample;
    ceSelect.replaceChildren(...options(null, true));
    ceSelect.value = answer.counterexample_label === null ? "" :
      String(answer.counterexample_label);
    $("correct-reason").value = "";
    $("correct-form").hidden = false;
    $("correct-open").hidden = true;
    exSelect.focus();
  }

  async function sendCorrection(event) {
    event.preventDefault();
    const {query} = state.last;
    const ce = $("correct-counterexample").value;
    const body = answerBody(Number($("correct-example").value),
                            query.counterexample && ce !== "" ? Number(ce) : null, query);
    body.reason = $("correct-reason").value.trim();
    if (!body.reason) {
      say("Say in a few words why you correct the answer; it goes into the label history.",
          "info");
      $("correct-reason").focus();
      return;
    }
    try {
      await call("POST", `/projects/${state.project.id}/queries/${query.id}/correct`, body);
    } catch (error) {
      fail(error, "correcting your last answer");
      return;
    }
    // What the example looked like before the first answer stays the reference.
    state.last = {query, answer: body};
    renderLast(true);
    say("Correction saved in the label history.", "info");
    refreshStats();
    document.activeElement.blur();
  }

  function closeCorrection() {
    $("correct-form").hidden = true;
    $("correct-open").hidden = false;
    document.activeElement.blur();
  }

  // -- keyboard ------------------------------------------------------------------------
  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target.closest && target.closest("#correct-form")) {
      if (event.key === "Escape") { event.preventDefault(); closeCorrection(); }
      return;
    }
    if (target.matches && target.matches("input, select, textarea")) return;
    if ($("review").hidden && event.key.toLowerCase() !== "c") return;
    const key = event.key;
    const lower = key.length === 1 ? key.toLowerCase() : key;
    if (key === "Tab") { event.preventDefault(); switchSide(event.shiftKey); return; }
    if (key === "Enter") {
      event.preventDefault();
      state.pressedAt = performance.now();
      submit();
      return;
    }
    if (lower === "s") { event.preventDefault(); state.pressedAt = performance.now(); skip(); return; }
    if (lower === "c") { event.preventDefault(); openCorrection(); return; }
    if (!state.query) return;
    if (lower === "k") {
      const data = state.query[state.active];
      if (data) pick(state.active, data.label);
      event.preventDefault();
      return;
    }
    const keys = classKeys();
    const k = keys.findIndex(c => c.digit === key || c.letter === lower);
    if (k >= 0) { event.preventDefault(); pick(state.active, k); }
  }

  // -- wiring --------------------------------------------------------------------------
  Cincer.onSignIn(start);
  $("sign-out").addEventListener("click", () => { Cincer.signOut(); clearTimeout(state.poll); showSignIn(); });
  $("project").addEventListener("change", event => {
    const project = state.projects.find(p => p.id === Number(event.target.value));
    if (project) openProject(project);
    event.target.blur();
  });
  $("submit").addEventListener("click", () => { state.pressedAt = performance.now(); submit(); });
  $("skip").addEventListener("click", () => { state.pressedAt = performance.now(); skip(); });
  $("correct-open").addEventListener("click", openCorrection);
  $("correct-cancel").addEventListener("click", closeCorrection);
  $("correct-form").addEventListener("submit", sendCorrection);
  document.addEventListener("keydown", onKey);

  if (Cincer.token()) start(); else showSignIn();
})();
