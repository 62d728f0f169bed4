def entry(event, context):
    return {"module": __name__}
