"""The report document: the bureau's 年度质量报告 (.docx) built from a published version.

Also checking a hand-edited report against it. Reads published versions through
``vetreport.publish.reader`` only, never the curated zone.
"""
