// The overview's crowd panels: each annotator's record (agreement, gold accuracy, median
// seconds, flag; suspend / restore) with the crowd's Krippendorff's alpha, and each
// source's noise rate with its interval and the batch relabels its patterns propose.
// Reads /api/v1/projects/<pid>/annotators and /sources; a person applies a proposal.
"use strict";

window.CincerCrowd = (() => {
  // client.js loads after this file: reach Cincer when called, not now.
  const call = (...args) => Cincer.call(...args);
  const el = (...args) => Cincer.el(...args);
  const $ = id => document.getElementById(id);
  let project = null, fail = null;

  const pct = v => v === null || v === undefined ? "–" : (100 * v).toFixed(0) + "%";
  const num = (v, d) => v === null || v === undefined ? "–" : Number(v).toFixed(d);

  async function load(chosen, onError) {
    project = chosen;
    fail = onError;
    await Promise.all([loadAnnotators(), loadSources()]);
  }

  async function loadAnnotators() {
    let view;
    try {
      view = await call("GET", `/projects/${project.id}/annotators`);
    } catch (error) {
      $("annotators").replaceChildren(el("p", {class: "hint", text: error.status === 403 ?
        "The admin or viewer token shows the annotators." : "Could not load the annotators."}));
      return;
    }
    const policy = view.policy;
    $("annotators-summary").textContent =
      `${policy.answers_per_query}–${policy.max_answers_per_query} answers per query, ` +
      `consensus at ${policy.consensus_confidence}; Krippendorff's alpha ` +
      `${num(view.krippendorff_alpha, 3)}. Flagged: estimated accuracy under ` +
      `${policy.min_annotator_accuracy} after ${view.min_answers_to_flag} answers ` +
      "(their votes count less; nothing is deleted).";
    if (!view.items.length) {
      $("annotators").replaceChildren(el("p", {class: "hint", text: "Nobody answered yet."}));
      return;
    }
    const rows = view.items.map(a => el("tr", {class: a.flagged ? "flagged" : null,
                                               "data-annotator": a.id},
      el("td", {text: a.name}), el("td", {text: a.answers}),
      el("td", {text: pct(a.agreement)}),
      el("td", {text: a.gold.answers ? `${pct(a.gold.accuracy)} of ${a.gold.answers}` : "–"}),
      el("td", {text: num(a.median_seconds, 1)}),
      el("td", {text: a.suspended ? "suspended" : a.flagged ? "flagged" : "ok"}),
      el("td", {}, el("button", {type: "button", class: "suspend",
                                 text: a.suspended ? "Restore" : "Suspend",
                                 onclick: () => suspend(a)}))));
    $("annotators").replaceChildren(el("table", {},
      el("thead", {}, el("tr", {}, ...["annotator", "answers", "agreement", "gold",
        "median s", "status", ""].map(text => el("th", {text})))),
      el("tbody", {}, rows)));
  }

  async function suspend(a) {
    const verb = a.suspended ? "restore" : "suspend";
    try {
      await call("POST", `/projects/${project.id}/annotators/${a.id}/${verb}`);
    } catch (error) { fail(error, verb + " an annotator"); return; }
    loadAnnotators();
  }

  async function loadSources() {
    let view;
    try {
      view = await call("GET", `/projects/${project.id}/sources`);
    } catch (error) {
      $("sources").replaceChildren(el("p", {class: "hint", text: error.status === 403 ?
        "The admin or viewer token shows the sources." : "Could not load the sources."}));
      return;
    }
    $("sources-summary").textContent = "Noise rate: the share of a source's checked " +
      `examples whose label was corrected (${(100 * view.interval_level).toFixed(0)}% ` +
      "interval).";
    const name = k => project.classes[k] !== undefined ? project.classes[k] : "class " + k;
    const rows = view.items.map(s => el("tr", {},
      el("td", {text: s.source === null ? "(none)" : s.source}), el("td", {text: s.examples}),
      el("td", {text: s.checked}),
      el("td", {text: s.noise_rate === null ? "–" : `${pct(s.noise_rate)} (` +
        `${pct(s.interval[0])}–${pct(s.interval[1])})`}),
      el("td", {text: s.confusion.slice(0, 3).map(c =>
        `${name(c.from_label)}→${name(c.to_label)} ×${c.count}`).join(", ") || "–"})));
    $("sources").replaceChildren(el("table", {},
      el("thead", {}, el("tr", {}, ...["source", "examples", "checked", "noise rate",
        "corrections"].map(text => el("th", {text})))), el("tbody", {}, rows)));
    $("proposals").replaceChildren(...view.proposals.map(p => el("p", {class: "proposal"},
      `${p.source === null ? "(no source)" : p.source}: ${p.corrections} of its ` +
      `${name(p.from_label)} labels were corrected to ${name(p.to_label)}; ${p.count} more ` +
      `${name(p.from_label)} labels are predicted ${name(p.to_label)}. `,
      el("button", {type: "button", text: `Relabel these ${p.count}`,
                    onclick: () => apply(p)}))));
  }

  async function apply(p) {
    try {
      const done = await call("POST", `/projects/${project.id}/sources/relabel`,
                              {source: p.source, from_label: p.from_label,
                               to_label: p.to_label});
      Cincer.say(`${done.changed} examples relabelled; each change is in its history.`,
                 "info");
    } catch (error) { fail(error, "applying the relabel proposal"); return; }
    loadSources();
  }

  return {load};
})();
