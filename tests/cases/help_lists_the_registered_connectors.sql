-- HELP prints the statements and every connector of the registry.
HELP;
