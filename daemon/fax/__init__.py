"""Faxes as cases: gateway detection, OCR text for the rules, customers by
fax number, answers through the e-mail-to-fax gateway."""
