"""Train: not built yet; an honest empty state says what it will do and what it needs."""

import streamlit as st

from pages._ui import empty_state

st.title("Train")
empty_state("ORPO fine-tunes the student on accepted pairs (TRL + PEFT, Unsloth on CUDA) as a background process with live loss and reward curves.", "an accepted preference set (Review)", "a later issue")
