// Follow a page without reloading it.  The element with data-live-url names a cheap JSON
// URL to poll every data-live-every milliseconds (default 500).  When the answer's
// "version" (or, without one, the whole answer) changes, the page is fetched again and
// every element marked data-live is replaced by its new self, in place: the rest of the
// page (a console, graphs, a half-filled form) stays as it is.  An element marked
// data-live-field="NAME" shows the answer's NAME at once.  Polling ends when the
// answer's "state" is one of data-live-final (comma-separated), after a last swap.
(function () {
  'use strict';
  var root = document.querySelector('[data-live-url]');
  if (!root) { return; }
  var url = root.getAttribute('data-live-url');
  var every = parseInt(root.getAttribute('data-live-every') || '500', 10);
  var finals = (root.getAttribute('data-live-final') || '').split(',').filter(Boolean);
  var seen = root.getAttribute('data-live-version');

  function versionOf(answer) {
    return answer.version !== undefined ? String(answer.version) : JSON.stringify(answer);
  }

  function swap() {
    return fetch(window.location.href, {credentials: 'same-origin', headers: {'Accept': 'text/html'}})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, 'text/html');
        document.querySelectorAll('[data-live]').forEach(function (el) {
          var next = el.id && fresh.getElementById(el.id);
          if (next) { el.replaceWith(document.importNode(next, true)); }
        });
        document.dispatchEvent(new CustomEvent('fc:live-updated'));
      });
  }

  // what the poll's answer itself says is shown at once (data-live-field="state"), before
  // the page is re-read for the rest
  function show(answer) {
    document.querySelectorAll('[data-live-field]').forEach(function (el) {
      var value = answer[el.getAttribute('data-live-field')];
      if (value === undefined || value === null) { return; }
      el.textContent = String(value).replace(/_/g, ' ');
      if (el.hasAttribute('data-state')) { el.setAttribute('data-state', value); }
    });
  }

  function poll() {
    fetch(url, {credentials: 'same-origin', cache: 'no-store', headers: {'Accept': 'application/json'}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (answer) {
        if (!answer) { window.setTimeout(poll, 5000); return; }
        var version = versionOf(answer);
        var done = finals.indexOf(answer.state) >= 0;
        var next = function () { if (!done) { window.setTimeout(poll, every); } };
        if (seen === null) { seen = ''; }  // no version in the page: re-read it once
        if (version !== seen) { show(answer); }
        if (version !== seen) { seen = version; swap().then(next, next); } else { next(); }
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  window.setTimeout(poll, every);
})();
