from cato.cli import app

app(prog_name="cato")
