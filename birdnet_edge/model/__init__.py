"""The BirdNET model: runtimes, labels, scoring, range filter, install and inspection."""
