// FedoraCloud's console page: ask the app for a one-time token (POST, JSON, CSRF), then
// open noVNC's WebSocket to the console proxy with the token inside the handshake
// (a Sec-WebSocket-Protocol entry next to "binary"), never in the URL.
(function () {
  'use strict';
  var root = document.getElementById('fc-console');
  if (!root) { return; }
  var statusEl = document.getElementById('fc-console-status');
  var screen = document.getElementById('fc-console-screen');
  var cad = document.getElementById('fc-console-cad');
  var again = document.getElementById('fc-console-reconnect');
  // what happened, for whoever watches the page (the browser tests read it)
  var watch = window.fcConsole = {events: [], rfb: null};
  var rfb = null;

  function say(text, state) {
    statusEl.textContent = text;
    statusEl.setAttribute('data-state', state);
    watch.events.push(state);
  }

  function offerAgain() {
    cad.disabled = true;
    again.hidden = false;
  }

  function websocketUrl(configured) {
    var url = new URL(configured, window.location.href);
    if (url.protocol === 'http:') { url.protocol = 'ws:'; }
    if (url.protocol === 'https:') { url.protocol = 'wss:'; }
    return url.href;
  }

  function open(grant) {
    if (!window.RFB) {
      say('The console viewer (noVNC) did not load; reload the page.', 'error');
      return;
    }
    say('Connecting to ' + grant.vm_name + '…', 'connecting');
    rfb = watch.rfb = new window.RFB(screen, websocketUrl(grant.websocket_url), {
      wsProtocols: grant.subprotocols
    });
    rfb.scaleViewport = true;
    rfb.addEventListener('connect', function () {
      say('Connected to ' + grant.vm_name + '.', 'connected');
      cad.disabled = false;
      again.hidden = true;
      rfb.focus();
    });
    rfb.addEventListener('disconnect', function (event) {
      rfb = watch.rfb = null;
      if (event.detail && event.detail.clean) {
        say('The console was closed.', 'disconnected');
      } else {
        say('The console proxy refused the connection or it was lost (a console token' +
            ' opens one connection, within a minute).', 'disconnected');
      }
      offerAgain();
    });
    rfb.addEventListener('securityfailure', function (event) {
      say('The VM\u2019s display refused the connection: ' +
          ((event.detail && event.detail.reason) || 'security failure') + '.', 'error');
    });
    rfb.addEventListener('credentialsrequired', function () {
      say('The VM\u2019s display asks for a password, which FedoraCloud does not set.', 'error');
    });
  }

  function connect() {
    again.hidden = true;
    say('Asking for a console token…', 'starting');
    fetch(root.getAttribute('data-token-url'), {
      method: 'POST',
      credentials: 'same-origin',
      cache: 'no-store',
      headers: {
        'Accept': 'application/json',
        'Content-Type': 'application/json',
        'X-CSRF-Token': root.getAttribute('data-csrf')
      },
      body: '{}'
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (!response.ok) {
          var message = body.error ? body.error.message : 'The console could not be opened.';
          say(message, 'error');
          offerAgain();
          return;
        }
        open(body);
      });
    }).catch(function () {
      say('FedoraCloud did not answer; try again.', 'error');
      offerAgain();
    });
  }

  cad.addEventListener('click', function () { if (rfb) { rfb.sendCtrlAltDel(); } });
  again.addEventListener('click', connect);
  connect();
})();
