"""The Jinja templates sopc renders (routines, REVIEW.md, the agent network, prompts).

They live at the top of the repository and ship inside the wheel as `sop_compiler.templates`
(see `setup.py`); `sop_compiler.files.TEMPLATES` is their folder, installed or editable.
"""
