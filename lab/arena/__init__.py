"""The arena: contestants, blind battles and votes, the Bradley-Terry leaderboard, batch evaluation, verdicts.

Sub-modules: contestants (parse "base", "ft:RUN", "rag:INDEX", "ft+rag:RUN:INDEX" into Responders over cached
models), battles (votes in SQLite), leaderboard (Bradley-Terry + bootstrap), evalset (read/validate evaluation
JSONL), evaluation (batch evaluation, saved and exported), verdict (plain-language conclusions from numbers).
Must not import gradio; heavy libraries only inside functions.
"""
