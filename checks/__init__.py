"""Built-in wsdoctor checks: one module per family, registered through entry points."""
