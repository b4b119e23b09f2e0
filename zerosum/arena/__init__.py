"""The arena: tournaments between local models, fixed bots and OpenAI-compatible API players.

`config` reads and checks the YAML file, `store` keeps every finished game in SQLite,
`local` batches local models' turns across concurrent games, `run` plays the missing games,
`ratings` fits Bradley-Terry and OpenSkill ratings, `report` renders the tables and files.
"""
