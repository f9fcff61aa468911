"""Engineers work cases by e-mail: staff directory, signed reply addresses,
authenticated commands and the customer conversation."""
