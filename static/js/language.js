// The language switcher in the top bar (#language-form): choosing a language submits the
// form at once, so its "Change" button is hidden. Without this script the button stays
// and the form works the same. No inline script (CSP).

const form = document.getElementById("language-form");
const select = form && form.querySelector("select[name=language]");
const button = form && form.querySelector("#language-submit");
if (form && select && button) {
  button.hidden = true;
  select.addEventListener("change", () => form.requestSubmit());
}
