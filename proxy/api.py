from ninja import NinjaAPI

api = NinjaAPI(title="Gateway API", docs_url="/docs")
