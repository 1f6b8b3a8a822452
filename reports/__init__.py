"""Built-in wsdoctor reporters: they render a Report and never probe."""
