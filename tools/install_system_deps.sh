#!/usr/bin/env bash
# Install the Debian packages the paper build and its tests need, only if missing.
# Checks what is actually usable (commands and TeX files), so a machine that already
# has them (any way) installs nothing. Needs root or sudo when something is missing.
set -euo pipefail

PACKAGES=(latexmk texlive-latex-base texlive-latex-recommended texlive-latex-extra
          texlive-fonts-recommended texlive-plain-generic texlive-publishers poppler-utils)

missing=()
for cmd in pdflatex latexmk bibtex kpsewhich pdftotext pdftoppm; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("command $cmd")
done
if command -v kpsewhich >/dev/null 2>&1; then
  for f in aastex631.cls aasjournal.bst booktabs.sty amsmath.sty hyperref.sty xcolor.sty \
           natbib.sty ulem.sty lineno.sty; do
    [ -n "$(kpsewhich "$f")" ] || missing+=("TeX file $f")
  done
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "system dependencies: all present"
  exit 0
fi
echo "system dependencies missing: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "error: need root (or sudo) to apt-get install ${PACKAGES[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
command -v apt-get >/dev/null 2>&1 || { echo "error: no apt-get; install TeX Live (${PACKAGES[*]}) by hand" >&2; exit 1; }
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"
echo "system dependencies: installed ${PACKAGES[*]}"
