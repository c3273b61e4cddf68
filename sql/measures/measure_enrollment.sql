-- measure_enrollment: per school and year, admissions and enrolled students from the
-- accepted enrollment submissions (one row per major and programme type).
-- Output grain: one row per (year, school_code, measure_id).
with enrollment as (
    select * from curated_enrollment
),

per_school as (
    select
        year,
        school_code,
        sum(admissions_count)::double as admissions_count,
        sum(enrolled_count)::double as enrolled_students_count,
        sum(case when program_type = '中职' then enrolled_count else 0 end)::double
            as enrolled_secondary_students_count,
        sum(case when program_type = '技工' then enrolled_count else 0 end)::double
            as enrolled_technician_students_count,
        sum(coalesce(long_program_admissions_count, 0))::double as long_program_admissions_count
    from enrollment
    group by year, school_code
),

final as (
    unpivot per_school
    on columns(* exclude (year, school_code))
    into name measure_id value measure_value
)

select year, school_code, null::varchar as city_name, measure_id, measure_value from final
