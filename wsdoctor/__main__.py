"""``python -m wsdoctor``."""

from wsdoctor.cli import entry

if __name__ == "__main__":
    entry()
