// Copy buttons for read-only fields: <button data-copy-target="FIELD-ID" hidden>.
// The button stays hidden without this script (the field can still be selected and
// copied by hand). No inline script (CSP).

document.querySelectorAll("[data-copy-target]").forEach((button) => {
  const field = document.getElementById(button.dataset.copyTarget);
  if (!field) return;
  const label = button.textContent;
  button.hidden = false;
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(field.value);
      button.textContent = button.dataset.copiedLabel || "Copied";
    } catch (error) {
      field.focus();
      field.select();
      button.textContent = button.dataset.failedLabel || label;
    }
    setTimeout(() => (button.textContent = label), 2000);
  });
});
