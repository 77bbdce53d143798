/* The backup and restore pages, live: from each "strongbox:progress" event (progress.js)
   it redraws the phase list ([data-phase-list]: pending / running / done / failed, with
   each phase's times and duration) and announces phase changes politely; when the run
   ends it fills in what only a finished run has (the [data-live] facts: sizes, checksum,
   duration, copies, the safety backup) from the final event's "result", and reveals
   the actions that became available ([data-live-when]). Never reloads the page. */
(function () {
  "use strict";

  var format = window.strongboxFormat;
  var GLYPHS = {pending: "○", running: "▶", done: "✓", failed: "✗"};
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  // The pages' own formats (Django's "H:i:s" and "j M Y H:i:s"), in UTC as the server's.
  function clock(iso) {
    var d = new Date(iso);
    return pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds());
  }

  function day(iso) {
    var d = new Date(iso);
    return d.getUTCDate() + " " + MONTHS[d.getUTCMonth()] + " " + d.getUTCFullYear();
  }

  function timeElement(iso, withSeconds) {
    var t = el("time", "", day(iso) + " " + (withSeconds ? clock(iso) : clock(iso).slice(0, 5)));
    t.setAttribute("datetime", iso);
    return t;
  }

  function seconds(value) { return Number(value).toFixed(1) + " s"; }

  // --- phases ---------------------------------------------------------------------------

  function phaseItem(phase, origin, span, now) {
    var li = el("li", "phase phase-" + phase.state);
    li.setAttribute("data-phase", phase.name);
    li.setAttribute("data-state", phase.state);
    var head = el("div", "phase-head");
    var badge = el("span", "status status-" + phase.state);
    var glyph = el("span", "", (GLYPHS[phase.state] || "–") + " ");
    glyph.setAttribute("aria-hidden", "true");
    badge.append(glyph, format.words(phase.state));
    head.append(el("strong", "", format.words(phase.name)), " ", badge);
    var bar = el("div", "phase-bar");
    bar.setAttribute("aria-hidden", "true");
    var fill = el("span");
    if (phase.startedAt && span) {
      var start = Date.parse(phase.startedAt);
      var end = phase.finishedAt ? Date.parse(phase.finishedAt) : now;
      fill.style.marginLeft = (Math.round(1000 * (start - origin) / span) / 10) + "%";
      fill.style.width = Math.max(Math.round(1000 * (end - start) / span) / 10, 1) + "%";
    } else {
      fill.style.width = "0%";
    }
    bar.append(fill);
    var times = "";
    if (phase.startedAt) { times += clock(phase.startedAt); }
    if (phase.finishedAt) { times += " → " + clock(phase.finishedAt); }
    if (phase.durationSec !== null && phase.durationSec !== undefined) {
      times += " · " + phase.durationSec + " s";
    }
    li.append(head, bar, el("small", "muted phase-times", times));
    return li;
  }

  function drawPhases(section, phases) {
    var list = section.querySelector("[data-phase-list]");
    var started = phases.filter(function (p) { return p.startedAt; });
    var now = Date.now();
    var origin = Math.min.apply(null, started.map(function (p) { return Date.parse(p.startedAt); }));
    var last = Math.max.apply(null, started.map(function (p) {
      return p.finishedAt ? Date.parse(p.finishedAt) : now;
    }));
    var span = started.length ? (last - origin) || 1000 : 0;
    list.replaceChildren.apply(list, phases.map(function (p) { return phaseItem(p, origin, span, now); }));
    list.hidden = phases.length === 0;
    section.querySelector("[data-phase-empty]").hidden = phases.length !== 0;
  }

  function statesShown(section) {
    var states = {};
    Array.prototype.forEach.call(section.querySelectorAll("[data-phase]"), function (li) {
      states[li.getAttribute("data-phase")] = li.getAttribute("data-state");
    });
    return states;
  }

  // "Dump done in 2.1 s; Verify running": what changed since the list last showed.
  function changes(before, phases) {
    return phases.filter(function (p) {
      return before[p.name] !== p.state && !(p.state === "pending" && !before[p.name]);
    }).map(function (p) {
      var text = format.words(p.name) + " " + p.state;
      if (p.state === "done" && p.durationSec !== null && p.durationSec !== undefined) {
        text += " in " + seconds(p.durationSec);
      }
      return text;
    }).join("; ");
  }

  function updatePhases(data) {
    var section = document.querySelector("[data-phases]");
    if (!section || !data.phases) { return; }
    var said = changes(statesShown(section), data.phases);
    drawPhases(section, data.phases);
    if (said) { section.querySelector("[data-phase-announcer]").textContent = said + "."; }
  }

  // --- the facts of a finished run ------------------------------------------------------

  function copyRow(copy) {
    var tr = el("tr");
    function cell(label) { var td = el("td"); td.setAttribute("data-label", label); tr.append(td); return td; }
    cell("Destination").append(copy.destination, " ", el("small", "muted", "(" + copy.kind + ")"));
    var state = cell("Copy");
    state.append(el("span", "status status-" + copy.status, copy.statusLabel));
    if (copy.lockedUntil) {
      state.append(el("br"), el("small", "muted", "locked until " + day(copy.lockedUntil) + " " + clock(copy.lockedUntil).slice(0, 5)));
    }
    if (copy.error) { state.append(el("br"), el("small", "error", copy.error)); }
    cell("Size").textContent = copy.size === null ? "—" : format.human(copy.size);
    cell("Key").append(el("code", "break", copy.key));
    var verified = cell("Last verified");
    verified.textContent = copy.lastVerifiedAt ? day(copy.lastVerifiedAt) + " " + clock(copy.lastVerifiedAt).slice(0, 5) : "—";
    return tr;
  }

  // Each [data-live="<name>"] element, filled from the final event (data, its result).
  var FILL = {
    "completed-label": function (node, data) {
      node.textContent = data.status === "completed" ? "Completed" : "Finished";
    },
    "completed": function (node, data, result) {
      node.replaceChildren(result.completedAt ? timeElement(result.completedAt, true) : "—");
    },
    "duration": function (node, data, result) {
      node.textContent = result.durationSec === null ? "—" : seconds(result.durationSec);
    },
    "size": function (node, data, result) {
      if (result.size === null) { node.textContent = "—"; return; }
      var detail = result.size + " bytes";
      if (result.compression) { detail += ", " + result.compression; }
      if (result.encryption && result.encryption !== "none") { detail += ", encrypted"; }
      node.replaceChildren(format.human(result.size), " ", el("small", "muted", "(" + detail + ")"));
    },
    "bytes-read": function (node, data, result) {
      node.textContent = result.bytesRead ? format.human(result.bytesRead) : "—";
    },
    "download-format": function (node, data, result) {
      node.textContent = "(still " + (result.compression ? result.compression + "-compressed" : "uncompressed") + ")";
    },
    "download-hint": function (node, data, result) {
      Array.prototype.forEach.call(node.querySelectorAll("[data-encryption]"), function (hint) {
        hint.hidden = hint.getAttribute("data-encryption") !== result.encryption;
      });
    },
    "checksum": function (node, data, result) { node.textContent = result.checksumSha256 || "—"; },
    "engine-version": function (node, data, result) { node.textContent = result.engineVersion || ""; },
    "encryption": function (node, data, result) {
      node.replaceChildren(result.encryptionLabel);
      if (result.keyId) {
        var key = el("small", "muted", "key id ");
        key.append(el("code", "break", result.keyId));
        node.append(" ", key);
      }
    },
    "copies": function (node, data, result) {
      if (!result.copies.length) {
        var none = el("td", "", "No copies yet.");
        none.colSpan = 5;
        var tr = el("tr");
        tr.append(none);
        node.replaceChildren(tr);
        return;
      }
      node.replaceChildren.apply(node, result.copies.map(copyRow));
    },
    "safety-backup": function (node, data, result) {
      var safety = result.safetyBackup;
      if (!safety) { node.textContent = "Not taken"; return; }
      var link = el("a", "", safety.statusLabel);
      link.href = node.getAttribute("data-url-template").replace("00000000-0000-0000-0000-000000000000", safety.id);
      node.replaceChildren(link);
    }
  };

  var REVEAL = {
    completed: function (data) { return data.status === "completed"; },
    ended: function () { return true; },
    undoable: function (data, result) { return Boolean(result.undoable); }
  };

  function showMessage(type, data) {
    var block = document.querySelector("[data-live-block=message]");
    if (!block || !data.message) { return; }
    if (type === "failed") { block.setAttribute("role", "alert"); }
    block.querySelector("[data-live=message]").textContent = data.message;
    block.hidden = false;
  }

  function finish(data) {
    var result = data.result;
    Array.prototype.forEach.call(document.querySelectorAll("[data-live-while=active]"), function (node) {
      node.hidden = true;
    });
    if (!result) { return; }  // the run is gone (deleted): nothing of it to show
    Array.prototype.forEach.call(document.querySelectorAll("[data-live]"), function (node) {
      var fill = FILL[node.getAttribute("data-live")];
      if (fill) { fill(node, data, result); }
    });
    Array.prototype.forEach.call(document.querySelectorAll("[data-live-when]"), function (node) {
      var when = REVEAL[node.getAttribute("data-live-when")];
      if (when && when(data, result)) { node.hidden = false; }
    });
  }

  document.addEventListener("strongbox:progress", function (e) {
    var type = e.detail.type, data = e.detail.data;
    updatePhases(data);
    showMessage(type, data);
    if (type === "done" || type === "failed") { finish(data); }
  });
}());
