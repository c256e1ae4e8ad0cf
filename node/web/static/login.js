// The one-time login link: take the token out of the address bar (and so out of the history),
// then POST it. Without scripts the operator presses the button; a GET alone never logs in.
(function () {
  var form = document.getElementById("login-form");
  if (!form || form.dataset.auto !== "1") return;
  if (window.history && history.replaceState) history.replaceState(null, "", "/web/login");
  form.submit();
})();
