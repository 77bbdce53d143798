/* Light or dark: the system's choice (prefers-color-scheme) until the toggle picks one,
   which is remembered in this browser. Loaded in <head>, so a page never flashes the other
   theme. No library needed. */
(function () {
  var KEY = "strongbox-theme";
  var root = document.documentElement;
  var saved = null;
  try { saved = window.localStorage.getItem(KEY); } catch (e) { /* private mode */ }
  if (saved === "dark" || saved === "light") { root.setAttribute("data-theme", saved); }

  function isDark() {
    var chosen = root.getAttribute("data-theme");
    if (chosen) { return chosen === "dark"; }
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
  }

  function label(button) {
    var dark = isDark();
    button.setAttribute("aria-pressed", dark ? "true" : "false");
    button.textContent = dark ? "Light mode" : "Dark mode";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var button = document.querySelector("[data-theme-toggle]");
    if (!button) { return; }
    button.hidden = false;
    label(button);
    button.addEventListener("click", function () {
      var next = isDark() ? "light" : "dark";
      root.setAttribute("data-theme", next);
      try { window.localStorage.setItem(KEY, next); } catch (e) { /* not remembered */ }
      label(button);
    });
  });
})();
