"""DTR (Da Vinci Documentation Templates and Rules 2.2): fetch a payer's forms, prepopulate them by running the
payer's CQL (as ELM JSON) and FHIRPath against the chart, and produce the QuestionnaireResponse."""
