from factories import make_member, make_program
from jifen.ledger import service as ledger


def test_earn_and_spend(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    db.write(lambda s: ledger.credit(s, book, member, 100, now=clock.now(), actor="t"))
    db.write(lambda s: ledger.debit(s, book, member, 30, now=clock.now(), actor="t"))
    from jifen.ledger.queries import current_balance

    bal = current_balance(db, book, member, clock.now())
    assert bal.available == 70
